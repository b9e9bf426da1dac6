"""`selfinstruct export`: each format read back through a model of its target tool's schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator
from typer.testing import CliRunner, Result

from selfinstruct.cli import app
from selfinstruct.outputs.export import TEMPLATES

SEED = {
    "id": "seed_task_0",
    "name": "s",
    "instruction": "Name a primary colour of paint.",
    "instances": [{"input": "", "output": "Red"}],
    "is_classification": False,
}
ROWS: list[dict[str, Any]] = [
    {
        "id": f"i-{k:02d}",
        "instruction": f"Task number {k}: say {{something}} <b>nice</b>.",
        "input": f"input {k}" if k % 2 else "",
        "output": f"Answer {k} \u2713",
        "is_classification": False,
    }
    for k in range(10)
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Alpaca(Strict):
    """Stanford Alpaca's alpaca_data.json: a list of these."""

    instruction: str
    input: str
    output: str


class Message(Strict):
    role: Literal["system", "user", "assistant"]
    content: str = Field(min_length=1)


class Chat(Strict):
    """OpenAI chat fine-tuning: optional system, then user/assistant turns, ending assistant."""

    messages: list[Message]

    @model_validator(mode="after")
    def _roles(self) -> Chat:
        roles = [m.role for m in self.messages]
        turns = roles[1:] if roles[:1] == ["system"] else roles
        assert turns and len(turns) % 2 == 0, roles
        assert turns == ["user", "assistant"] * (len(turns) // 2), roles
        return self


class Turn(Strict):
    from_: Literal["human", "gpt"] = Field(alias="from")
    value: str


class ShareGPT(Strict):
    """ShareGPT conversations: human and gpt alternate, human first."""

    conversations: list[Turn]

    @model_validator(mode="after")
    def _alternate(self) -> ShareGPT:
        speakers = [t.from_ for t in self.conversations]
        assert speakers and speakers == ["human", "gpt"] * (len(speakers) // 2), speakers
        return self


class PromptCompletion(Strict):
    prompt: str
    completion: str


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def make_pool(rows: list[dict[str, Any]] = ROWS) -> None:
    Path("data").mkdir()
    Path("data/seeds.jsonl").write_text(json.dumps(SEED) + "\n")
    Path("data/dataset.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def jsonl(path: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def user(row: dict[str, Any]) -> str:
    return str(row["instruction"]) + ("\n\n" + row["input"] if row["input"] else "")


def test_alpaca_is_a_json_list_of_the_records() -> None:
    make_pool()
    result = run("export", "--format", "alpaca", "--out", "out/alpaca.json")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "export: done\n"
        "  records  10 (10 from the dataset + 0 seed instances)\n"
        "  format   alpaca\n"
        "  written  10 -> out/alpaca.json\n"
    )
    got = TypeAdapter(list[Alpaca]).validate_json(Path("out/alpaca.json").read_text())
    assert [r.model_dump() for r in got] == [
        {k: r[k] for k in ("instruction", "input", "output")} for r in ROWS
    ]
    assert os_listing("out") == ["alpaca.json"]  # no temp file left behind


def os_listing(folder: str) -> list[str]:
    return sorted(p.name for p in Path(folder).iterdir())


def test_openai_chat_messages_with_and_without_system() -> None:
    make_pool()
    assert run("export", "--format", "openai", "--out", "chat.jsonl").exit_code == 0
    chats = [Chat.model_validate(r) for r in jsonl("chat.jsonl")]
    assert [[m.content for m in c.messages] for c in chats] == [
        [user(r), r["output"]] for r in ROWS
    ]
    assert chats[1].messages[0].content == "Task number 1: say {something} <b>nice</b>.\n\ninput 1"
    run("export", "--format", "openai", "--out", "chat.jsonl", "--system", "Be brief.")
    chats = [Chat.model_validate(r) for r in jsonl("chat.jsonl")]
    assert {c.messages[0].model_dump_json() for c in chats} == {
        '{"role":"system","content":"Be brief."}'
    }
    assert "\u2713" in Path("chat.jsonl").read_text(encoding="utf-8")  # not \\u escaped


def test_sharegpt_conversations_alternate_human_and_gpt() -> None:
    make_pool()
    assert run("export", "--format", "sharegpt", "--out", "sg.jsonl").exit_code == 0
    got = [ShareGPT.model_validate(r) for r in jsonl("sg.jsonl")]
    assert [[t.value for t in c.conversations] for c in got] == [
        [user(r), r["output"]] for r in ROWS
    ]


def test_prompt_completion_default_template() -> None:
    make_pool()
    assert run("export", "--format", "prompt-completion", "--out", "pc.jsonl").exit_code == 0
    got = [PromptCompletion.model_validate(r) for r in jsonl("pc.jsonl")]
    assert got[0].prompt == "Task number 0: say {something} <b>nice</b>.\n\nOutput:"
    assert (
        got[1].prompt == "Task number 1: say {something} <b>nice</b>.\n\nInput: input 1\n\nOutput:"
    )
    assert [g.completion for g in got] == [" " + r["output"] for r in ROWS]


def test_varied_templates_are_seeded_per_record() -> None:
    rows = [dict(ROWS[k % 2], id=f"i-{k:03d}") for k in range(60)]
    make_pool(rows)
    args = ["export", "--format", "prompt-completion", "--varied-templates"]
    assert run(*args, "--out", "a.jsonl").exit_code == 0
    first = jsonl("a.jsonl")
    run(*args, "--out", "b.jsonl")
    run(*args, "--out", "c.jsonl", "--seed", "7")
    assert jsonl("b.jsonl") == first and jsonl("c.jsonl") != first
    used = set()
    for row, rec in zip(rows, first, strict=True):
        fields = {"instruction": row["instruction"], "input": row["input"]}
        matches = [
            k
            for k, t in enumerate(TEMPLATES)
            if rec["prompt"] == (t.with_input if row["input"] else t.without_input).format(**fields)
            and rec["completion"] == t.completion.format(output=row["output"])
        ]
        assert matches, rec
        used.add(matches[0])
    assert len(used) >= 5


def test_include_seeds_adds_them_first_and_only_once() -> None:
    seed_row = {
        "id": "seed_task_0-0",
        "instruction": SEED["instruction"],
        "input": "",
        "output": "Red",
        "is_classification": False,
    }
    make_pool(ROWS[:2])
    result = run("export", "--format", "alpaca", "--out", "a.json", "--include-seeds")
    assert "records  3 (2 from the dataset + 1 seed instances)" in result.stdout
    assert json.loads(Path("a.json").read_text())[0]["instruction"] == SEED["instruction"]
    Path("data/dataset.jsonl").write_text(json.dumps(seed_row) + "\n")  # filter --include-seeds
    result = run("export", "--format", "alpaca", "--out", "a.json", "--include-seeds")
    assert "records  1 (1 from the dataset + 0 seed instances)" in result.stdout


def test_shuffle_and_split() -> None:
    make_pool()
    args = ["export", "--format", "sharegpt", "--out", "out/sg.jsonl", "--shuffle", "--seed", "3"]
    result = run(*args, "--split", "train=0.8,validation=0.2")
    assert result.exit_code == 0, result.output
    assert result.stdout.endswith(
        "  train       8 -> out/sg.train.jsonl\n  validation  2 -> out/sg.validation.jsonl\n"
    )
    assert os_listing("out") == ["sg.train.jsonl", "sg.validation.jsonl"]
    train, valid = jsonl("out/sg.train.jsonl"), jsonl("out/sg.validation.jsonl")
    outputs = [r["conversations"][1]["value"] for r in train + valid]
    assert sorted(outputs) == sorted(r["output"] for r in ROWS)
    assert outputs != [r["output"] for r in ROWS]
    run(*args, "--out", "again.jsonl")
    assert jsonl("again.jsonl") == train + valid  # the same seed, the same order


def test_split_sizes_always_add_up() -> None:
    make_pool()
    run("export", "--format", "openai", "--out", "o.jsonl", "--split", "a=0.34,b=0.33,c=0.33")
    assert [len(jsonl(f"o.{n}.jsonl")) for n in "abc"] == [3, 4, 3]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--format", "csv"],
            "unknown format 'csv'; choose one of: alpaca, openai, sharegpt, prompt-completion, "
            "dpo, dpo-chat",
        ),
        (
            ["--format", "alpaca", "--split", "train=0.9,validation=0.2"],
            "--split 'train=0.9,validation=0.2': the fractions must be positive and sum to 1, "
            "not 1.1",
        ),
        (
            ["--format", "alpaca", "--split", "train=0.9,validation"],
            "--split 'train=0.9,validation': expected NAME=FRACTION,..., "
            "e.g. train=0.95,validation=0.05",
        ),
        (
            ["--format", "alpaca", "--split", "a=0.5,a=0.5"],
            "--split 'a=0.5,a=0.5': each split name may appear only once",
        ),
        (
            ["--format", "sharegpt", "--system", "x"],
            "--system applies only to --format openai and dpo-chat",
        ),
        (
            ["--format", "openai", "--varied-templates"],
            "--varied-templates applies only to --format prompt-completion",
        ),
    ],
)
def test_usage_errors_exit_2_and_write_nothing(args: list[str], message: str) -> None:
    make_pool()
    result = run("export", "--out", "x.jsonl", *args)
    assert result.exit_code == 2
    assert result.stderr == f"Error: {message}\n"
    assert not list(Path().glob("x*"))


def test_refuses_to_overwrite_the_dataset() -> None:
    make_pool()
    result = run("export", "--format", "openai", "--out", "data/dataset.jsonl")
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: --out data/dataset.jsonl would overwrite the dataset; choose another file\n"
    )
    assert jsonl("data/dataset.jsonl") == ROWS


def test_missing_dataset_says_to_run_filter() -> None:
    make_pool()
    Path("data/dataset.jsonl").unlink()
    result = run("export", "--format", "openai", "--out", "x.jsonl")
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: no dataset at data/dataset.jsonl - run `selfinstruct filter` first\n"
    )
