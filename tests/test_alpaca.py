"""`--preset alpaca`: the parser of whole tasks, the pool's records, filter/export, the pool's
memory of its preset, the decoding, the blacklist, cut-off replies and batch mode."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfinstruct.method.alpaca import Task, parse_tasks
from selfinstruct.method.parsing import chat_residue
from tests.fakealpaca import ChattyAlpaca, plain
from tests.fakeserver import FakeOpenAI, cut_words, default_reply, prompt_text
from tests.pooldata import FAST, MakeServer, lines, write_config, write_seeds
from tests.pooldata import invoke as cli


@pytest.fixture(autouse=True)
def setup() -> None:
    write_config(FAST)
    write_seeds()


def ok(server: FakeOpenAI | None, *args: str) -> Any:
    result = cli(server, *args)
    assert result.exit_code == 0, result.output
    return result


def fields(tasks: list[Task]) -> list[tuple[str, str, str]]:
    return [(t.instruction, t.input, t.output) for t in tasks]


A = ("Name three rivers that flow through Germany.", "", "The Rhine, the Elbe and the Danube.")
B = (
    "Correct the grammar of this sentence.",
    "She go to school every days.",
    "She goes to school every day.",
)
C = ("Is the number below prime?", "91", "No: 91 is 7 times 13.")


@pytest.mark.parametrize(
    "text",
    [
        # the layout as asked, with the prompt's last number echoed and a number past the end
        "4. Instruction: Name three rivers that flow through Germany.\n4. Input:\n<noinput>\n"
        "4. Output:\nThe Rhine, the Elbe and the Danube.\n###\n5. Instruction: Correct the grammar"
        " of this sentence.\n5. Input:\nShe go to school every days.\n5. Output:\nShe goes to "
        "school every day.\n###\n6. Instruction: Is the number below prime?\n6. Input:\n91\n"
        "6. Output:\nNo: 91 is 7 times 13.\n###\n20. Instruction: Past the end.\n20. Input:\n"
        "<noinput>\n20. Output:\nDropped.",
        # a chat model: preamble, bold labels, rules, a closing remark
        "Sure! Here are the next tasks:\n\n**4. Instruction:** Name three rivers that flow "
        "through Germany.\n**4. Input:** <noinput>\n**4. Output:** The Rhine, the Elbe and the "
        "Danube.\n\n---\n\n**5. Instruction:** Correct the grammar of this sentence.\n**5. Input:**"
        " She go to school every days.\n**5. Output:** She goes to school every day.\n\n---\n\n"
        "**6. Instruction:** Is the number below prime?\n**6. Input:** 91\n**6. Output:** No: 91 "
        "is 7 times 13.\n\nI hope these tasks help! Let me know if you need more.",
        # headings, no numbers on the fields, inputs written as None, inside a fence
        "```\n### Task 4\nInstruction: Name three rivers that flow through Germany.\nInput: None\n"
        "Output: The Rhine, the Elbe and the Danube.\n\n### Task 5\nInstruction: Correct the "
        "grammar of this sentence.\nInput: She go to school every days.\nOutput: She goes to "
        "school every day.\n\n### Task 6\n**Instruction**: Is the number below prime?\n"
        "**Input**: 91\n**Output**: No: 91 is 7 times 13.\n```",
        # going on right after the prompt's "4. Instruction:", no input field at all
        "Name three rivers that flow through Germany.\n4. Output:\nThe Rhine, the Elbe and the "
        "Danube.\n###\nInstruction: Correct the grammar of this sentence.\nInput: She go to school"
        " every days.\nOutput: She goes to school every day.\n###\nInstruction: Is the number "
        "below prime?\nInput: 91\nOutput: No: 91 is 7 times 13.\n###",
    ],
)
def test_parse_tasks_reads_the_layout_as_models_write_it(text: str) -> None:
    assert fields(parse_tasks(text, 4, 19, truncated=False)) == [A, B, C]


def test_parse_tasks_drops_echoes_broken_blocks_and_a_cut_last_task() -> None:
    text = (
        "3. Instruction: An echo of the prompt's third task.\n3. Input:\n<noinput>\n3. Output:\nx\n"
        "###\n4. Instruction: A task without an output at all.\n4. Input:\nsomething\n###\n"
        + plain(5, A)
        + "6. Instruction: Write two lines about rain.\n6. Input:\n<noinput>\n6. Output:\n"
        "Rain on the roof,\nrain in the street.\n###\n" + "7. Instruction: Cut off in the midd"
    )
    whole = parse_tasks(text, 4, 19, truncated=False)
    assert [t.number for t in whole] == [5, 6]  # 7 has no output; 3 echoes the prompt
    assert whole[1].output == "Rain on the roof,\nrain in the street."
    assert [t.number for t in parse_tasks(text, 4, 19, truncated=True)] == [5, 6]
    assert [t.number for t in parse_tasks(plain(4, A) + plain(5, B), 4, 19, True)] == [4]


def alpaca_bodies(server: FakeOpenAI) -> list[dict[str, Any]]:
    return [b for b in server.bodies() if "Instruction:" in prompt_text(b)]


def test_run_alpaca_writes_whole_tasks_that_filter_stats_and_export_read(
    make_server: MakeServer,
) -> None:
    server = make_server()
    result = ok(server, "run", "--seeds", "seeds.jsonl", "-n", "30", "--preset", "alpaca")
    assert re.search(r"tasks +written whole by stage 1 \(--preset alpaca", result.stdout)
    assert "classified" not in result.stdout
    bodies = server.bodies()
    assert bodies and bodies == alpaca_bodies(server)  # no classify or instances request
    body = bodies[0]
    assert (body["temperature"], body["top_p"], body["max_tokens"]) == (1.0, 1.0, 3072)
    assert body["stop"] == ["\n20.", "\n20 ."]
    prompt = prompt_text(body)
    assert prompt.endswith("###\n4. Instruction:") and prompt.count("###") == 4
    assert "<noinput>" in prompt and "1. Output:" in prompt
    machine = lines("data/instructions.jsonl")
    assert len(machine) == 30
    sets = {r["id"]: r for r in lines("data/instances.jsonl")}
    classes = {r["id"]: r for r in lines("data/classifications.jsonl")}
    for rec in machine:
        got, flag = sets[rec["id"]], classes[rec["id"]]
        assert got["prompt_kind"] == "alpaca" and len(got["instances"]) == 1
        assert got["is_classification"] is None and got["request"] == rec["request"]
        assert (flag["is_classification"], flag["preset"]) == (None, "alpaca")
    assert json.loads(Path("data/run.json").read_text())["preset"] == "alpaca"
    rows = lines("data/dataset.jsonl")
    assert 0 < len(rows) <= 30 and all(r["is_classification"] is None for r in rows)
    with_input = sum(bool(s["instances"][0]["input"]) for s in sets.values())
    assert 0 < with_input < 30  # the toy model gives ~40% an input, the rest <noinput>
    assert all(s["instances"][0]["input"] != "<noinput>" for s in sets.values())
    status = ok(None, "status", "--json")
    assert json.loads(status.stdout)["classify"]["not_asked"] == 30
    shown = ok(None, "status").stdout
    assert "30 not asked (alpaca)" in shown and "n/a" not in shown  # stages 2-3 paid nothing
    ok(None, "filter")
    assert lines("data/dataset.jsonl") == rows  # the same bytes again
    ok(None, "export", "--format", "alpaca", "--out", "alpaca.json")
    exported = json.loads(Path("alpaca.json").read_text())
    assert [(r["instruction"], r["output"]) for r in exported] == [
        (r["instruction"], r["output"]) for r in rows
    ]
    assert "instructions" in ok(None, "stats").stdout


def test_chat_wrapped_replies_give_exactly_the_meant_tasks(make_server: MakeServer) -> None:
    model = ChattyAlpaca(seed=5)
    server = make_server(reply=model)
    ok(server, "run", "--seeds", "seeds.jsonl", "-n", "60", "--preset", "alpaca", "--quiet")
    meant = set(model.meant)
    rows = lines("data/dataset.jsonl")
    assert len(rows) >= 50
    for row in rows:
        assert (row["instruction"], row["input"], row["output"]) in meant, row
        assert not any(chat_residue(row[k]) for k in ("instruction", "input", "output"))
    rejected = {r["instruction"] for r in lines("data/rejected_instructions.jsonl")}
    assert not any("Instruction" in text or "**" in text for text in rejected)


def test_completions_api_continues_after_the_open_instruction(make_server: MakeServer) -> None:
    server = make_server()
    ok(
        server,
        "run",
        "--seeds",
        "seeds.jsonl",
        "-n",
        "12",
        "--preset",
        "alpaca",
        "--api",
        "completions",
        "--quiet",
    )
    assert all(b["prompt"].endswith("4. Instruction:") for b in server.bodies())
    sets = lines("data/instances.jsonl")
    assert len(sets) == 12
    assert not any(s["instruction"].startswith(("4.", "Instruction")) for s in sets)


def test_the_pool_remembers_its_preset_and_refuses_to_mix(make_server: MakeServer) -> None:
    server = make_server()
    ok(server, "run", "--seeds", "seeds.jsonl", "-n", "10", "--preset", "alpaca", "--quiet")
    ok(server, "run", "-n", "20", "--quiet")  # no --preset: the pool's own
    assert len(server.bodies()) == len(alpaca_bodies(server))
    assert len(lines("data/instances.jsonl")) == 20
    before = {p.name: p.read_bytes() for p in Path("data").iterdir() if p.is_file()}
    for command in (["run", "-n", "30"], ["generate", "-n", "30"], ["generate", "--batch"]):
        result = cli(server, *command, "--preset", "self-instruct")
        assert result.exit_code == 2
        assert result.stderr == (
            "Error: the pool data was made with --preset alpaca; --preset self-instruct would "
            "mix two recipes in one pool: use a new --pool, or pass --force to mix them\n"
        )
    after = {p.name: p.read_bytes() for p in Path("data").iterdir() if p.is_file()}
    assert after == before  # refused before anything was written
    # --force mixes: the default recipe's tasks go through stages 2 and 3
    ok(server, "run", "-n", "30", "--preset", "self-instruct", "--force", "--quiet")
    kinds = {s["prompt_kind"] for s in lines("data/instances.jsonl")}
    assert kinds == {"alpaca", "input_first", "output_first"} or kinds >= {"alpaca"}
    assert len(lines("data/classifications.jsonl")) == 30
    rows = lines("data/dataset.jsonl")
    assert {r["is_classification"] for r in rows} >= {None, False}
    assert json.loads(Path("data/run.json").read_text())["presets"] == ["alpaca", "self-instruct"]


def test_a_self_instruct_pool_refuses_alpaca(make_server: MakeServer) -> None:
    server = make_server()
    ok(server, "generate", "--seeds", "seeds.jsonl", "-n", "5", "--no-progress")
    result = cli(server, "generate", "-n", "9", "--preset", "alpaca")
    assert result.exit_code == 2 and "made with --preset self-instruct" in result.stderr
    result = cli(server, "generate", "-n", "9", "--preset", "alpacca")
    assert result.exit_code == 2 and "--preset: Input should be" in result.stderr


def fixed_tasks(tasks: list[tuple[str, str, str]]) -> Any:
    def reply(body: dict[str, Any]) -> str:
        if not prompt_text(body).endswith("Instruction:"):
            return default_reply(body)
        return "".join(plain(n, t) for n, t in enumerate(tasks, 4))

    return reply


TASKS = [
    ("Describe the music you would play at a quiet dinner party.", "", "Soft jazz, low."),
    ("Suggest a title for a short video about urban gardening.", "", "Green Corners."),
    ("Explain why the sky looks blue on a clear afternoon.", "", "Light scatters."),
    ("Translate the greeting below into French.", "Good morning, everyone.", "Bonjour à tous."),
    ("Which of these fruits is a berry?", "apple, banana, pear", "The banana."),
    ("Rewrite this headline so that it sounds less alarming.", "Storm hits town", "Rain today."),
    ("List four ways to save energy in a small apartment.", "", "Lights off, and more."),
    ("Summarize the story of a famous fairy tale in two sentences.", "", "A girl, a wolf."),
    ("Propose a polite reply to a colleague who missed a meeting.", "", "No worries at all."),
]


def test_alpaca_blacklist_and_a_cut_off_reply(make_server: MakeServer) -> None:
    server = make_server(reply=fixed_tasks(TASKS))
    server.script("length")  # the first reply is cut: half its words, finish_reason "length"
    args = ["generate", "--seeds", "seeds.jsonl", "-n", "7", "--preset", "alpaca"]
    ok(server, *args, "--no-progress", "--concurrency", "1")
    reasons = {r["instruction"]: r["reason"] for r in lines("data/rejected_instructions.jsonl")}
    assert reasons[TASKS[0][0]] == reasons[TASKS[1][0]] == "blacklisted_word"  # music, video
    full = "".join(plain(n, t) for n, t in enumerate(TASKS, 4))
    whole = parse_tasks(cut_words(full, len(full.split()) // 2), 4, 19, truncated=True)
    assert 3 < len(whole) < len(TASKS) - 1
    machine = lines("data/instructions.jsonl")
    first = [r["instruction"] for r in machine if r["request"] == machine[0]["request"]]
    assert first == [t.instruction for t in whole][2:]  # all but the cut-off last task
    assert sorted(r["instruction"] for r in machine) == sorted(t[0] for t in TASKS[2:])


def test_alpaca_in_batch_mode(make_server: MakeServer) -> None:
    server = make_server()
    ok(
        server,
        "run",
        "--batch",
        "--seeds",
        "seeds.jsonl",
        "-n",
        "20",
        "--preset",
        "alpaca",
        "--seed",
        "2",
        "--quiet",
    )
    for _ in range(6):
        if not server.finish_batches():
            break
        ok(server, "run", "--batch", "--quiet")
    final = ok(server, "run", "--batch")
    assert final.stdout == "Nothing to do: data is at its target of 20.\n"
    assert len(lines("data/instructions.jsonl")) == len(lines("data/instances.jsonl")) == 20
    assert all(s["prompt_kind"] == "alpaca" for s in lines("data/instances.jsonl"))
    assert lines("data/dataset.jsonl")
    files = list(Path("data/batch_files").iterdir())
    assert files and all(p.name.startswith("selfinstruct-generate-") for p in files)
    assert re.search(r'"preset": "alpaca"', Path("data/run.json").read_text())


def test_numbered_lines_inside_an_output_stay_in_it() -> None:
    text = (
        "4. Instruction: Put these steps in order.\n4. Input:\n- Rinse.\n- Soap.\n4. Output:\n"
        "1. Soap.\n2. Rinse.\n###\n5. Instruction: Write the number 20 in words.\n5. Input:\n"
        "<noinput>\n5. Output:\nTwenty."
    )
    tasks = parse_tasks(text, 4, 19, truncated=False)
    assert fields(tasks) == [
        ("Put these steps in order.", "- Rinse.\n- Soap.", "1. Soap.\n2. Rinse."),
        ("Write the number 20 in words.", "", "Twenty."),
    ]


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=2**31))
def test_every_chat_wrapping_parses_back_to_the_meant_tasks(seed: int) -> None:
    model = ChattyAlpaca(seed)
    reply = model.reply(4)
    assert fields(parse_tasks(reply, 4, 19, truncated=False)) == model.meant
