"""`selfinstruct filter` and `selfinstruct dedup`: the rules, the rejects file, determinism."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from selfinstruct.cli import app
from selfinstruct.models import stable_id


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def write(path: str, records: list[dict[str, Any]]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("".join(json.dumps(r) + "\n" for r in records))


def lines(path: str) -> list[dict[str, Any]]:
    """Unlike `pooldata.lines`, a missing file is an error here: every file read must exist."""
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


Task = tuple[str, bool | None, list[tuple[str, str]] | None]


def make_pool(tasks: list[Task], **extra: Any) -> list[str]:
    """Write a pool: (instruction, is_classification, instances or None for none)."""
    write(
        "data/seeds.jsonl",
        [
            {
                "id": "seed_task_0",
                "name": "s",
                "instruction": "Name a primary colour of paint.",
                "instances": [{"input": "", "output": "Red"}],
                "is_classification": False,
            }
        ],
    )
    ids = [stable_id("i", text) for text, _, _ in tasks]
    write(
        "data/instructions.jsonl",
        [
            {"id": i, "instruction": t, "most_similar": [], "request": "r", "round": 0}
            for i, (t, _, _) in zip(ids, tasks, strict=True)
        ],
    )
    write(
        "data/classifications.jsonl",
        [
            {"id": i, "instruction": t, "is_classification": c, "answer": "x", "request": "r"}
            for i, (t, c, _) in zip(ids, tasks, strict=True)
        ],
    )
    write(
        "data/instances.jsonl",
        [
            {
                "id": i,
                "instruction": t,
                "is_classification": bool(c),
                "prompt_kind": "input_first",
                "instances": [{"input": a, "output": b} for a, b in inst],
                "raw": "",
                "request": "r",
                "finish_reason": extra.get("finish_reason", "stop"),
                "truncated": extra.get("truncated"),
            }
            for i, (t, c, inst) in zip(ids, tasks, strict=True)
            if inst is not None
        ],
    )
    return ids


def rules_of(rejects: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(r["rule"], r.get("output", r["instruction"])) for r in rejects]


def test_instance_rules_and_reasons() -> None:
    make_pool(
        [
            (
                "Explain why the ocean tastes salty to a child.",
                False,
                [
                    ("", "Rivers carry salt into the sea."),
                    ("", ""),
                    ("same", "same"),
                    ("Question:", "x y"),
                    ("a", "ends with:"),
                    ("", "Rivers carry salt into the sea."),
                ],
            ),
            (
                "Decide whether the movie review below is positive or negative.",
                True,
                [
                    ("Great film", "Positive"),
                    ("Great film", "Negative"),
                ],
            ),
            ("Describe the image of a sunset over the mountains.", False, [("", "Orange sky.")]),
            ("Suggest a weekend hobby for someone who works at a desk all week.", None, None),
            ("Recommend three board games for a family with young children.", False, None),
        ]
    )
    result = run("filter")
    assert result.exit_code == 0, result.output
    assert lines("data/dataset.jsonl") == [
        {
            "id": stable_id("i", "Explain why the ocean tastes salty to a child.") + "-0",
            "instruction": "Explain why the ocean tastes salty to a child.",
            "input": "",
            "output": "Rivers carry salt into the sea.",
            "is_classification": False,
        }
    ]
    assert sorted(rules_of(lines("data/filter_rejects.jsonl"))) == sorted(
        [
            ("empty_output", ""),
            ("input_equals_output", "same"),
            ("ends_with_colon", "x y"),
            ("ends_with_colon", "ends with:"),
            ("duplicate", "Rivers carry salt into the sea."),
            ("conflicting_outputs", "Positive"),
            ("conflicting_outputs", "Negative"),
            ("blacklisted_word", "Describe the image of a sunset over the mountains."),
            ("not_classified", "Suggest a weekend hobby for someone who works at a desk all week."),
            ("no_instances", "Recommend three board games for a family with young children."),
        ]
    )
    assert re.search(r"conflicting_outputs\s+2\n", result.stdout)
    details = {r["rule"]: r["detail"] for r in lines("data/filter_rejects.jsonl")}
    assert details["input_equals_output"] == "the output repeats the input"
    assert details["duplicate"] == "the same input and output again"
    assert details["not_classified"] == "stage 2 has not classified it yet"
    assert all(details.values())  # every record says why, as docs/pool.md lists `detail`


def test_rouge_rule_in_pool_order_and_seeds() -> None:
    first = "Write a short poem about the first snow of winter in the city."
    near = "Write a short poem about the first snow of winter in the village."
    seedlike = "Name a primary colour of paint please."
    make_pool(
        [
            (first, False, [("", "Snow falls.")]),
            (near, False, [("", "Flakes.")]),
            (seedlike, False, [("", "Blue")]),
        ]
    )
    assert run("filter").exit_code == 0
    assert [r["instruction"] for r in lines("data/dataset.jsonl")] == [first]
    rejects = {r["instruction"]: r for r in lines("data/filter_rejects.jsonl")}
    assert rejects[near]["rule"] == "too_similar" and rejects[near]["detail"].endswith(first)
    assert rejects[seedlike]["detail"].endswith("Name a primary colour of paint.")
    looser = run("filter", "--rouge-threshold", "0.95")
    assert looser.exit_code == 0 and len(lines("data/dataset.jsonl")) == 3


def test_max_instances_truncated_and_seeds() -> None:
    five = [(f"in {i}", f"out {i}") for i in range(7)]
    make_pool(
        [("Add a polite closing line to each email below.", False, five)],
        truncated={"input": "in 7", "output": "out"},
        finish_reason="length",
    )
    result = run("filter", "--max-instances", "5", "--include-seeds", "--out", "final.jsonl")
    assert result.exit_code == 0, result.output
    rows = lines("final.jsonl")
    assert rows[0]["id"] == "seed_task_0-0" and rows[0]["output"] == "Red"
    sampled = [r["input"] for r in rows[1:]]
    assert len(sampled) == 5 and sampled == sorted(set(sampled)) and sampled != five[:5]
    assert [r["id"][-2:] for r in rows[1:]] == ["-0", "-1", "-2", "-3", "-4"]
    rejects = lines("data/filter_rejects.jsonl")
    assert sorted(r["rule"] for r in rejects) == ["over_max_instances"] * 2 + ["truncated"]
    left_out = {r["input"] for r in rejects if r["rule"] == "over_max_instances"}
    assert left_out | set(sampled) == {f"in {i}" for i in range(7)}
    # The sample is the method's: seeded, so the same pool gives the same rows every time.
    assert run("filter", "--max-instances", "5", "--out", "again.jsonl").exit_code == 0
    assert [r["input"] for r in lines("again.jsonl")] == sampled
    Path("selfinstruct.toml").write_text("[filter]\nseed = 7\n")
    assert run("filter", "--out", "other.jsonl").exit_code == 0
    assert [r["input"] for r in lines("other.jsonl")] != sampled


def test_conflicts_count_only_valid_instances_and_empty_replies_are_reported() -> None:
    ids = make_pool(
        [
            # "Great film" clashes only with an instance that is invalid anyway: the task stays.
            (
                "Decide whether the movie review below is positive or negative.",
                True,
                [
                    ("Great film", "Positive"),
                    ("Great film", "Negative:"),
                    ("Dull plot", "Negative"),
                ],
            ),
            ("Sort the list of numbers below from smallest to largest.", False, []),
            (
                "Fix the grammar of the sentence below without changing its meaning.",
                False,
                [
                    ("me and him goes home", "He and I go home."),
                    ("she dont know", "Sure! Here is the corrected sentence: She doesn't know."),
                    ("they was late", "They were late.\n```"),
                ],
            ),
        ]
    )
    assert run("filter").exit_code == 0
    assert [(r["input"], r["output"]) for r in lines("data/dataset.jsonl")] == [
        ("Great film", "Positive"),
        ("Dull plot", "Negative"),
        ("me and him goes home", "He and I go home."),
    ]
    rejects = [
        (r["id"], r["rule"], r.get("detail", "")) for r in lines("data/filter_rejects.jsonl")
    ]
    assert rejects == [
        (ids[0], "ends_with_colon", "the output ends with ':'"),
        (ids[1], "no_instances", "the reply held no instance the parser could read"),
        (ids[2], "chat_residue", "preamble 'Sure! Here is the corrected sentence: Sh'"),
        (ids[2], "chat_residue", "fence line '```'"),
    ]


def test_chat_residue_can_be_switched_off() -> None:
    make_pool([("Fix the grammar of the sentence below.", False, [("a b", "Sure! Fixed: a b c.")])])
    assert run("filter").exit_code == 0 and lines("data/dataset.jsonl") == []
    Path("selfinstruct.toml").write_text("[filter]\ndrop_chat_residue = false\n")
    assert run("filter").exit_code == 0 and len(lines("data/dataset.jsonl")) == 1


def test_optional_heuristics_from_the_config_file() -> None:
    instruction = "Give one tip for staying focused while studying at home."
    make_pool(
        [
            (
                instruction,
                False,
                [
                    ("", "As an AI language model, I cannot study."),
                    ("", "Put your phone in another room."),
                    ("", "Ok."),
                    ("", instruction + " Use a timer."),
                ],
            )
        ]
    )
    assert run("filter").exit_code == 0
    assert len(lines("data/dataset.jsonl")) == 4  # off by default: the method as published
    Path("selfinstruct.toml").write_text(
        "[filter]\ndrop_refusals = true\noutput_min_words = 2\n"
        "drop_output_repeating_instruction = true\n"
    )
    assert run("filter").exit_code == 0
    assert [r["output"] for r in lines("data/dataset.jsonl")] == ["Put your phone in another room."]
    rules = sorted(r["rule"] for r in lines("data/filter_rejects.jsonl"))
    assert rules == ["output_repeats_instruction", "output_too_short", "refusal"]


def test_filter_twice_is_byte_identical() -> None:
    tasks: list[Task] = [
        (
            f"Describe a {w} way to spend a rainy afternoon with friends.",
            False,
            [("", w), ("x", "y")],
        )
        for w in ("fun", "calm", "cheap")
    ]
    make_pool(tasks)
    assert run("filter").exit_code == 0
    first = Path("data/dataset.jsonl").read_bytes(), Path("data/filter_rejects.jsonl").read_bytes()
    assert run("filter").exit_code == 0
    assert (
        Path("data/dataset.jsonl").read_bytes(),
        Path("data/filter_rejects.jsonl").read_bytes(),
    ) == first


def test_filter_on_a_damaged_pool_names_the_line() -> None:
    make_pool([("Explain how a rainbow forms after a storm.", False, [("", "Light bends.")])])
    with open("data/classifications.jsonl", "a") as fp:
        fp.write('{"id": "x"}\n')
    result = run("filter")
    assert result.exit_code == 1
    assert "data/classifications.jsonl line 2: field 'instruction': Field required" in result.stderr
    assert not Path("data/dataset.jsonl").exists()


def test_dedup_jsonl_with_rejected_and_against(tmp_path: Path) -> None:
    records: list[dict[str, Any]] = [
        {"instruction": "List five fruits that are high in vitamin C.", "output": "a"},
        {"instruction": "List five fruits that are very high in vitamin C.", "output": "b"},
        {"instruction": "Explain how tides are caused by the moon.", "output": "c", "extra": 1},
        {"instruction": "Plan a picnic menu for six people.", "output": "d"},
    ]
    write("in.jsonl", records)
    write("old.jsonl", [{"instruction": "Plan a picnic menu for six people!"}])
    result = run(
        "dedup",
        "in.jsonl",
        "--out",
        "out.jsonl",
        "--rejected",
        "rej.jsonl",
        "--against",
        "old.jsonl",
    )
    assert result.exit_code == 0, result.output
    assert lines("out.jsonl") == [records[0], records[2]]
    rejected = lines("rej.jsonl")
    assert [r["output"] for r in rejected] == ["b", "d"]
    assert (
        rejected[0]["_most_similar"] == records[0]["instruction"] and rejected[0]["_rouge_l"] > 0.7
    )
    assert rejected[1]["_most_similar"] == "Plan a picnic menu for six people!"


def test_dedup_json_list_and_field() -> None:
    Path("in.json").write_text(
        json.dumps([{"prompt": "Say hello to the world"}, {"prompt": "say hello to the world!"}])
    )
    assert run("dedup", "in.json", "--out", "out.json", "--field", "prompt").exit_code == 0
    assert json.loads(Path("out.json").read_text()) == [{"prompt": "Say hello to the world"}]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            '{"instruction": "ok"}\n{"text": "no field"}\n',
            "in.jsonl line 2: field 'instruction': missing",
        ),
        ('{"instruction": 3}\n', "in.jsonl line 1: field 'instruction': not a string"),
        ('{"instruction": "ok"}\n{"instruction"\n', "in.jsonl line 2: invalid JSON"),
    ],
)
def test_dedup_bad_input(content: str, message: str) -> None:
    Path("in.jsonl").write_text(content)
    result = run("dedup", "in.jsonl", "--out", "out.jsonl")
    assert result.exit_code == 2 and result.stderr.startswith(f"Error: {message}")
    assert not Path("out.jsonl").exists()
