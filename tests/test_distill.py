"""`selfinstruct distill`: a teacher's answers for a pool (both presets) or a file, re-runs that
ask nothing twice, `filter --outputs distilled` and export, batch mode, and failures."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from selfinstruct.stages.distill import user_turn
from tests.fakealpaca import is_teacher, teacher_answer
from tests.fakeserver import FakeOpenAI, Refuse, default_reply, prompt_text
from tests.pooldata import FAST, MakeServer, lines, write_config, write_seeds
from tests.pooldata import invoke as cli


@pytest.fixture(autouse=True)
def setup() -> None:
    write_config(FAST + "max_retries = 1\n")
    write_seeds()


def ok(server: FakeOpenAI | None, *args: str) -> Any:
    result = cli(server, *args)
    assert result.exit_code == 0, result.output
    return result


def questions() -> set[tuple[str, str]]:
    return {
        (s["instruction"], inst["input"])
        for s in lines("data/instances.jsonl")
        for inst in s["instances"]
    }


def expected(model: str, instruction: str, given: str, system: str | None = None) -> str:
    return teacher_answer(model, system, user_turn(instruction, given))


def teacher_requests(server: FakeOpenAI) -> list[dict[str, Any]]:
    return [b for b in server.bodies() if "messages" in b and is_teacher(b)]


def test_distill_a_pool_then_filter_and_export_its_answers(make_server: MakeServer) -> None:
    server = make_server()
    ok(server, "run", "--seeds", "seeds.jsonl", "-n", "12", "--preset", "alpaca", "--quiet")
    asked = questions()
    capped = cli(server, "distill", "--model", "teacher-a", "--max-requests", "5", "--no-progress")
    assert capped.exit_code == 3 and "answered  5 -> data/distilled.jsonl" in capped.stdout
    ok(None, "filter", "--outputs", "distilled")
    rejects = Counter(r["rule"] for r in lines("data/filter_rejects.jsonl"))
    assert rejects["no_teacher_answer"] == len(asked) - 5  # missing: dropped, not the original
    assert len(lines("data/dataset.jsonl")) == 5
    result = ok(server, "distill", "--model", "teacher-a", "--no-progress")
    assert f"this run  {len(asked) - 5} questions (5 answered by earlier runs)" in result.stdout
    records = lines("data/distilled.jsonl")
    assert {(r["instruction"], r["input"]) for r in records} == asked
    for r in records:
        assert r["output"] == expected("teacher-a", r["instruction"], r["input"])
        assert (r["teacher"], r["model"], r["finish_reason"]) == ("teacher-a",) * 2 + ("stop",)
        assert r["original"] and r["prompt_tokens"] > 0 and r["completion_tokens"] > 0
    sent = len(server.requests)
    again = ok(server, "distill", "--model", "teacher-a")
    assert again.stdout.startswith("Nothing to do: the teacher has answered all")
    assert len(server.requests) == sent  # a re-run asks nothing twice
    body = teacher_requests(server)[0]
    assert [m["role"] for m in body["messages"]] == ["user"]
    ok(None, "filter", "--outputs", "distilled")
    rows = lines("data/dataset.jsonl")
    assert len(rows) == len(asked)
    assert all(r["output"] == expected("teacher-a", r["instruction"], r["input"]) for r in rows)
    ok(None, "export", "--format", "openai", "--out", "chat.jsonl")
    answers = {c["messages"][-1]["content"] for c in lines("chat.jsonl")}
    assert answers == {r["output"] for r in rows}
    usage = json.loads(Path("data/run.json").read_text())["stages"]["distill"]["totals"]
    assert usage["requests"] == len(asked)


def test_another_teacher_or_system_prompt_is_another_set(make_server: MakeServer) -> None:
    server = make_server()
    ok(server, "run", "--seeds", "seeds.jsonl", "-n", "6", "--quiet")
    ok(server, "distill", "--model", "teacher-a", "--no-progress")
    n = len(lines("data/distilled.jsonl"))
    assert n == len(questions()) > 6  # the self-instruct preset: several instances a task
    ok(server, "distill", "--model", "teacher-b", "--system", "Answer briefly.", "--no-progress")
    records = lines("data/distilled.jsonl")
    assert len(records) == 2 * n
    second = records[n:]
    assert {r["teacher"] for r in second} == {"teacher-b+system-" + second[0]["teacher"][-8:]}
    for r in second:
        want = expected("teacher-b", r["instruction"], r["input"], "Answer briefly.")
        assert r["output"] == want
    body = teacher_requests(server)[-1]
    assert body["messages"][0] == {"role": "system", "content": "Answer briefly."}
    ok(None, "filter", "--outputs", "distilled")  # the last teacher asked
    assert all(r["output"].startswith("[teacher-b]") for r in lines("data/dataset.jsonl"))
    ok(None, "filter", "--outputs", "distilled", "--teacher", "teacher-a")
    rows = lines("data/dataset.jsonl")
    assert rows and all(r["output"].startswith("[teacher-a]") for r in rows)
    assert {r["is_classification"] for r in rows} <= {True, False}  # the paper's recipe
    ok(None, "export", "--format", "alpaca", "--out", "a.json")
    assert [r["output"] for r in json.loads(Path("a.json").read_text())] == [
        r["output"] for r in rows
    ]
    bad = cli(None, "filter", "--outputs", "distilled", "--teacher", "gpt-5")
    assert bad.exit_code == 2
    assert bad.stderr == (
        "Error: data/distilled.jsonl: no answers from teacher 'gpt-5'; it holds: teacher-a, "
        f"{second[0]['teacher']}\n"
    )


def test_stage_4_rules_apply_to_the_teachers_outputs(make_server: MakeServer) -> None:
    def reply(body: dict[str, Any]) -> str:
        if is_teacher(body):  # a teacher that only announces its answer
            return "Here is the answer:"
        return default_reply(body)

    server = make_server(reply=reply)
    ok(server, "run", "--seeds", "seeds.jsonl", "-n", "5", "--preset", "alpaca", "--quiet")
    ok(server, "distill", "--model", "teacher-a", "--no-progress")
    ok(None, "filter", "--outputs", "distilled")
    assert lines("data/dataset.jsonl") == []
    rules = Counter(r["rule"] for r in lines("data/filter_rejects.jsonl"))
    assert rules["ends_with_colon"] == 5


def test_a_failing_teacher_leaves_nothing_half_written(make_server: MakeServer) -> None:
    state = {"on": True}

    def reply(body: dict[str, Any]) -> str:
        if is_teacher(body) and state["on"]:
            raise Refuse(500)
        return default_reply(body)

    server = make_server(reply=reply)
    ok(server, "run", "--seeds", "seeds.jsonl", "-n", "4", "--preset", "alpaca", "--quiet")
    failed = cli(server, "distill", "--model", "teacher-a", "--no-progress")
    assert failed.exit_code == 4
    assert "Incomplete: 4 without an answer; the pool is saved" in failed.stderr
    assert lines("data/distilled.jsonl") == []
    assert {f["stage"] for f in lines("data/failures.jsonl")} == {"distill"}
    state["on"] = False
    ok(server, "distill", "--model", "teacher-a", "--no-progress")
    assert len(lines("data/distilled.jsonl")) == 4
    chat = cli(server, "distill", "--model", "teacher-a", "--api", "completions")
    assert chat.exit_code == 2
    assert chat.stderr == "Error: distill asks a chat model: drop --api completions\n"


def test_distill_a_file(make_server: MakeServer) -> None:
    server = make_server()
    data: list[dict[str, Any]] = [
        {"instruction": "Name three rivers in Spain.", "input": "", "output": "Tagus.", "id": 7},
        {"instruction": "Fix the spelling.", "input": "Teh cat sat.", "output": "The cat sat."},
        {"instruction": "Give a synonym for happy.", "output": "glad"},
    ]
    Path("alpaca_data.json").write_text(json.dumps(data))
    result = ok(server, "distill", "alpaca_data.json", "--out", "gpt.json", "--model", "teacher-a")
    assert "written   3 with the teacher's output -> gpt.json" in result.stdout
    out = json.loads(Path("gpt.json").read_text())
    assert [{k: v for k, v in r.items() if k != "output"} for r in out] == [
        {k: v for k, v in r.items() if k != "output"} for r in data
    ]
    for r in out:
        assert r["output"] == expected("teacher-a", r["instruction"], r.get("input", ""))
    asked = sorted(prompt_text(r) for r in teacher_requests(server))  # sent concurrently
    assert asked[0] == "Fix the spelling.\n\nTeh cat sat."
    sent = len(server.requests)
    Path("data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in data))
    ok(server, "distill", "data.jsonl", "--out", "gpt.json", "--model", "teacher-a")
    assert len(server.requests) == sent  # the same questions: answered by the work pool
    assert lines("gpt.json.distill/distilled.jsonl") and Path("gpt.json").read_text() == (
        json.dumps(out, ensure_ascii=False, indent=2) + "\n"
    )
    ok(server, "distill", "data.jsonl", "--out", "gpt.jsonl", "--model", "teacher-a")
    assert [r["output"] for r in lines("gpt.jsonl")] == [r["output"] for r in out]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            '{"instruction": "a", "output": "b"}\n{"output": "c"}\n',
            "line 2: field 'instruction': missing",
        ),
        (
            '{"instruction": "a", "input": 3, "output": "b"}\n',
            "line 1: field 'input': not a string",
        ),
        ('{"instruction": "a"}\n[1]\n', "line 2: expected a JSON object, got list"),
    ],
)
def test_bad_file_lines_are_named_and_nothing_is_written(
    fake_server: FakeOpenAI, text: str, error: str
) -> None:
    Path("bad.jsonl").write_text(text)
    result = cli(fake_server, "distill", "bad.jsonl", "--out", "out.jsonl", "--model", "teacher-a")
    assert result.exit_code == 2
    assert result.stderr == f"Error: bad.jsonl {error}\n"
    assert not Path("out.jsonl").exists() and fake_server.requests == []
    missing = cli(fake_server, "distill", "bad.jsonl", "--model", "teacher-a")
    assert missing.stderr.startswith("Error: pass --out FILE")


def test_distill_in_batch_mode(make_server: MakeServer) -> None:
    server = make_server()
    ok(server, "run", "--seeds", "seeds.jsonl", "-n", "8", "--preset", "alpaca", "--quiet")
    online = len(server.requests)
    first = ok(server, "distill", "--batch", "--model", "teacher-a")
    assert "submitted" in first.stdout and "distill 8" in first.stdout
    assert lines("data/distilled.jsonl") == []
    assert server.finish_batches()
    second = ok(server, "distill", "--batch", "--model", "teacher-a")
    assert re.search(r"answered\s+8\n", second.stdout)
    records = lines("data/distilled.jsonl")
    assert len(records) == 8
    assert all(r["output"] == expected("teacher-a", r["instruction"], r["input"]) for r in records)
    chat = [r for r in server.requests[online:] if r.path.endswith("/chat/completions")]
    assert chat == []  # all through the Batch API
    done = ok(server, "distill", "--model", "teacher-a")
    assert done.stdout.startswith("Nothing to do")
    assert ok(server, "distill", "--batch", "--model", "teacher-a").stdout.startswith(
        "Nothing to do"
    )


def test_run_batch_collects_an_open_distill_batch(make_server: MakeServer) -> None:
    server = make_server()
    ok(server, "run", "--seeds", "seeds.jsonl", "-n", "6", "--preset", "alpaca", "--quiet")
    ok(server, "distill", "--batch", "--model", "teacher-a")
    assert server.finish_batches()
    ok(server, "run", "--batch", "--model", "teacher-a", "-n", "6")  # cron's line collects it
    sent = len(server.requests)
    result = ok(server, "distill", "--model", "teacher-a", "--no-progress")
    assert "6 from cache" in result.stdout and len(server.requests) == sent
    assert len(lines("data/distilled.jsonl")) == 6
    spent = json.loads(Path("data/run.json").read_text())["stages"]["distill"]["totals"]
    assert spent["batched"] == spent["requests"] == 6


def test_distill_only_the_dataset(make_server: MakeServer) -> None:
    server = make_server()
    ok(server, "run", "--seeds", "seeds.jsonl", "-n", "5", "--quiet")
    rows = lines("data/dataset.jsonl")[:3]  # as if stage 4 had kept only these
    Path("data/dataset.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert len(rows) < len(questions())
    ok(server, "distill", "--dataset", "--model", "teacher-a", "--no-progress")
    answered = {(r["instruction"], r["input"]) for r in lines("data/distilled.jsonl")}
    assert answered == {(r["instruction"], r["input"]) for r in rows}
    Path("data/dataset.jsonl").unlink()
    result = cli(server, "distill", "--dataset", "--model", "teacher-a")
    assert result.exit_code == 2 and result.stderr == (
        "Error: data/dataset.jsonl does not exist yet: run `selfinstruct filter`, "
        "or drop --dataset\n"
    )
