"""`selfinstruct generate` end to end: the real client over HTTP against the fake server."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from rouge_score import rouge_scorer
from typer.testing import Result

from selfinstruct.store.pool import Pool
from tests.fakecorpus import make_instruction
from tests.fakeserver import FakeOpenAI, numbered_reply
from tests.pooldata import FAST, KEY, MakeServer, invoke, lines, write_config

SEED_TEXTS = [
    "Suggest a name for a bakery that specializes in sourdough bread.",
    "Explain how a bicycle gear system makes climbing hills easier.",
    "Give three tips for keeping houseplants alive during winter.",
    "Classify the following sentence as a question or a statement.",
    "Translate the phrase below into Spanish.",
    "Summarize the main argument of the paragraph in one sentence.",
    "Compose a short thank-you note to a neighbour who watered my garden.",
    "List the planets of the solar system in order of distance from the sun.",
    "Convert the temperature from Celsius to Fahrenheit and show your work.",
    "Recommend a weekend routine for someone who wants to read more books.",
]
REJECTS = Path("data/rejected_instructions.jsonl")


@pytest.fixture
def seeds(tmp_path: Path) -> Path:
    path = tmp_path / "seeds.jsonl"
    lines = [json.dumps({"instruction": t, "input": "", "output": "ok"}) for t in SEED_TEXTS]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(autouse=True)
def fast_retries(tmp_path: Path) -> None:
    write_config(FAST + "max_consecutive_failures = 10\n")


def run(server: FakeOpenAI | None, *args: str, key: str | None = KEY) -> Result:
    return invoke(server, "generate", "--no-progress", *args, key=key)


_SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def rouge_l(a: str, b: str) -> float:
    return float(_SCORER.score(b, a)["rougeL"].fmeasure)


def prompt_of(body: dict[str, Any]) -> str:
    return str(body["messages"][-1]["content"] if "messages" in body else body["prompt"])


def test_generates_the_target_and_reports(make_server: MakeServer, seeds: Path) -> None:
    server = make_server()
    result = run(server, "--seeds", str(seeds), "-n", "25", "--seed", "7")
    assert result.exit_code == 0, result.output
    records = lines(Path("data/instructions.jsonl"))
    assert len(records) == 25 and len({r["id"] for r in records}) == 25
    for i, record in enumerate(records):  # exact top 10 (F > 0) of the pool when it was accepted
        pool = SEED_TEXTS + [r["instruction"] for r in records[:i]]
        scores = [(-rouge_l(record["instruction"], text), j) for j, text in enumerate(pool)]
        best = [(pool[j], round(-f, 4)) for f, j in sorted(scores) if f < 0][:10]
        assert [(s["instruction"], s["score"]) for s in record["most_similar"]] == best
        mean = sum(-f for f, _ in scores) / len(pool)  # the mean over the whole pool, exact
        assert record["mean_similarity"] == pytest.approx(round(mean, 4), abs=1e-4)
    assert any(r["most_similar"] for r in records)
    assert "generate: done" in result.stdout
    assert re.search(r"pool\s+25 / 25 machine instructions \(\+25\)", result.stdout)
    rejects = lines(Path("data/rejected_instructions.jsonl"))
    assert re.search(rf"rejected\s+{len(rejects)}\b", result.stdout)
    for reason in {r["reason"] for r in rejects}:
        count = sum(r["reason"] == reason for r in rejects)
        assert re.search(rf"{reason}\s+{count}\b", result.stdout)
    sent = len(server.completed())
    assert re.search(rf"requests\s+{sent} sent, 0 from cache, 0 failed", result.stdout)
    manifest = json.loads(Path("data/run.json").read_text())["stages"]["generate"]
    assert manifest["outcome"] == "done" and manifest["seed"] == 7
    assert manifest["usage"]["requests"] == sent and manifest["counters"]["accepted"] == 25


def test_prompts_show_eight_examples_six_seed_two_machine(
    make_server: MakeServer, seeds: Path
) -> None:
    server = make_server()
    assert run(server, "--seeds", str(seeds), "-n", "30", "--concurrency", "1").exit_code == 0
    machine = {r["instruction"] for r in lines(Path("data/instructions.jsonl"))}
    prompts = [prompt_of(b) for b in server.bodies()]
    for i, prompt in enumerate(prompts):
        examples = re.findall(r"^(\d+)\. (.*)$", prompt, re.MULTILINE)
        assert [int(n) for n, _ in examples] == list(range(1, 9))
        from_machine = sum(text in machine for _, text in examples)
        from_seeds = sum(text in SEED_TEXTS for _, text in examples)
        assert from_machine + from_seeds == 8
        assert from_machine == (0 if i == 0 else 2), prompt
        assert "numbered 9 to 15" in prompt


def test_completions_api_prompt_ends_with_the_next_number(
    make_server: MakeServer, seeds: Path
) -> None:
    server = make_server()
    result = run(server, "--seeds", str(seeds), "-n", "10", "--api", "completions")
    assert result.exit_code == 0, result.output
    body = server.bodies()[0]
    assert body["prompt"].endswith("\n9.")
    assert body["stop"] == ["\n\n", "\n16", "16.", "16 ."]  # a blank line ends the list too
    assert (body["temperature"], body["top_p"], body["presence_penalty"]) == (0.7, 0.5, 2.0)
    assert len(lines(Path("data/instructions.jsonl"))) == 10


def test_rerun_same_target_does_nothing_and_larger_continues(
    make_server: MakeServer, seeds: Path
) -> None:
    server = make_server()
    assert run(server, "--seeds", str(seeds), "-n", "12").exit_code == 0
    first = Path("data/instructions.jsonl").read_text()
    sent = len(server.requests)
    again = run(server, "-n", "12")
    assert again.exit_code == 0 and "Nothing to do" in again.stdout
    assert len(server.requests) == sent
    more = run(server, "-n", "30")
    assert more.exit_code == 0, more.output
    text = Path("data/instructions.jsonl").read_text()
    assert text.startswith(first)
    ids = [r["id"] for r in lines(Path("data/instructions.jsonl"))]
    assert len(ids) == 30 and len(set(ids)) == 30


def test_responses_beyond_the_target_are_used_by_the_next_run(
    make_server: MakeServer, seeds: Path
) -> None:
    server = make_server(latency=0.05)
    assert run(server, "--seeds", str(seeds), "-n", "10", "--concurrency", "4").exit_code == 0
    sent = len(server.completed())
    records = lines(Path("data/instructions.jsonl")) + lines(
        Path("data/rejected_instructions.jsonl")
    )
    used = len({r["request"] for r in records})
    assert sent > used  # requests still in flight when the target was reached
    result = run(server, "-n", "60")
    assert result.exit_code == 0, result.output
    reused = re.search(r"\((\d+) responses reused from the cache\)", result.stdout)
    assert reused is not None and int(reused.group(1)) == sent - used


def test_near_duplicates_are_rejected_naming_their_best_match(
    make_server: MakeServer, seeds: Path
) -> None:
    novel = "Describe the smell of rain to someone who has never experienced it."
    items = [
        "Suggest a name for a bakery that specializes in sourdough loaves.",  # ~ a seed
        novel,
        "Describe the smell of rain to a person who has never experienced it.",  # ~ item 2
        "Estimate how many tennis balls fit inside a standard school bus.",
    ]
    server = make_server(reply=numbered_reply(items))
    result = run(server, "--seeds", str(seeds), "-n", "2", "--concurrency", "1")
    assert result.exit_code == 0, result.output
    assert [r["instruction"] for r in lines(Path("data/instructions.jsonl"))] == [novel, items[3]]
    rejects = lines(REJECTS)
    assert [(r["instruction"], r["reason"]) for r in rejects] == [
        (items[0], "too_similar"),
        (items[2], "too_similar"),
    ]
    for reject, match in zip(rejects, [SEED_TEXTS[0], novel], strict=True):
        score = rouge_l(reject["instruction"], match)
        assert score > 0.7 and reject["detail"] == f"ROUGE-L {score:.3f} with: {match}"
    assert re.search(r"too_similar\s+2\b", result.stdout)


def test_truncated_reply_loses_only_its_last_item(make_server: MakeServer, seeds: Path) -> None:
    items = [
        "Describe the smell of rain to someone who has never experienced it.",
        "Outline a polite way to decline a wedding invitation from a coworker.",
        "Estimate how many tennis balls fit inside a standard school bus.",
    ]
    server = make_server(reply=numbered_reply(items))
    server.script("length")
    result = run(server, "--seeds", str(seeds), "-n", "1", "--concurrency", "1")
    assert result.exit_code == 0, result.output
    assert lines(Path("data/instructions.jsonl"))[0]["instruction"] == items[0]


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_faults_that_recover(make_server: MakeServer, seeds: Path, transport: str) -> None:
    with Path("selfinstruct.toml").open("a") as config:  # keeps the fixture's short backoff
        config.write(f'transport = "{transport}"\n')
    server = make_server(hang_seconds=2.0)
    server.script("429", "500", "503", "drop", "malformed", "hang")
    result = run(server, "--seeds", str(seeds), "-n", "5", "--concurrency", "1", "--timeout", "0.5")
    assert result.exit_code == 0, result.output
    assert re.search(r"retries\s+6\b", result.stdout)
    assert re.search(r"0 failed", result.stdout)
    assert len(lines(Path("data/instructions.jsonl"))) == 5


def test_faults_that_do_not_recover_stop_with_the_pool_saved(
    make_server: MakeServer, seeds: Path
) -> None:
    server = make_server(fault_rate=1.0, fault_kinds=["503"])
    write_config(FAST + "max_consecutive_failures = 4\n")
    args = ("--seeds", str(seeds), "-n", "5", "--max-retries", "1", "--concurrency", "1")
    result = run(server, *args)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: 4 consecutive failures over 0s, the last 503 Service")
    assert f"from {server.base_url}; the pool is saved, re-run to continue" in result.stderr
    failures = lines(Path("data/failures.jsonl"))
    assert len(failures) == 2 and all(f["attempts"] == 2 for f in failures)
    assert failures[0]["error"].startswith("503 Service Unavailable: ")
    manifest = json.loads(Path("data/run.json").read_text())["stages"]["generate"]
    assert manifest["outcome"].startswith("error: 4 consecutive failures")


def test_wrong_key_fails_fast_without_leaking_it(make_server: MakeServer, seeds: Path) -> None:
    server = make_server()
    secret = "sk-wrong-secret-value-123"
    result = run(server, "--seeds", str(seeds), "-n", "5", key=secret)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: 401 from http://127.0.0.1:")
    assert "check the API key" in result.stderr
    assert len(server.requests) <= 8  # no retries of a 401
    for path in [*Path("data").iterdir()]:
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    assert secret not in result.output


def test_key_never_written(make_server: MakeServer, seeds: Path) -> None:
    server = make_server()
    assert run(server, "--seeds", str(seeds), "-n", "5").exit_code == 0
    for path in Path("data").iterdir():
        if path.is_file() and path.name != ".lock":
            assert KEY.encode() not in path.read_bytes(), path


def test_missing_key_for_openai(seeds: Path) -> None:
    result = run(None, "--seeds", str(seeds), "-n", "5", key=None)
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "Error: no API key found - set OPENAI_API_KEY or pass --api-key"
    )
    assert not Path("data/instructions.jsonl").exists()


def test_budget_cap_stops_cleanly_and_resumes(make_server: MakeServer, seeds: Path) -> None:
    server = make_server()
    result = run(server, "--seeds", str(seeds), "-n", "60", "--max-requests", "2")
    assert result.exit_code == 3
    assert (
        "Stopped: reached --max-requests 2; the pool is saved - re-run to continue."
        in result.stderr
    )
    assert len(server.completed()) == 2
    have = len(lines(Path("data/instructions.jsonl")))
    assert 0 < have < 60
    assert run(server, "-n", "60").exit_code == 0
    assert len(lines(Path("data/instructions.jsonl"))) == 60


def test_locked_pool_exits_75(make_server: MakeServer, seeds: Path) -> None:
    server = make_server()
    with Pool(Path("data")).writing():
        result = run(server, "--seeds", str(seeds), "-n", "5")
    assert result.exit_code == 75
    assert result.stderr.startswith(
        "Error: the pool data is in use by another selfinstruct run (pid "
    )
    assert server.requests == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "no seed tasks (the file is empty)"),
        (b'{"instruction": "ok", "output": "x"}\n{"instruction": 1\n', "line 2: invalid JSON"),
        (b'{"instruction": "ok"}\n', "line 1: field 'output': Field required"),
        (b"\xff\n", "line 1: not valid UTF-8"),
    ],
)
def test_bad_seed_file_exits_2_and_writes_nothing(
    make_server: MakeServer, tmp_path: Path, content: bytes, message: str
) -> None:
    server = make_server()
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(content)
    result = run(server, "--seeds", str(bad), "-n", "5")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {bad}") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert server.requests == []
    assert not list(Path("data").glob("*.jsonl"))


def test_seeds_are_remembered_and_must_not_change(
    make_server: MakeServer, seeds: Path, tmp_path: Path
) -> None:
    server = make_server()
    assert run(server, "--seeds", str(seeds), "-n", "3").exit_code == 0
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"instruction": "Name a colour.", "output": "Red"}) + "\n")
    result = run(server, "--seeds", str(other), "-n", "6")
    assert result.exit_code == 2 and "was started from other seed tasks" in result.stderr
    fresh = run(server, "-n", "3", "--pool", "elsewhere")
    assert fresh.exit_code == 2
    assert fresh.stderr == "Error: no pool at elsewhere (create one with --seeds)\n"


def test_dry_run_sends_nothing(make_server: MakeServer, seeds: Path) -> None:
    server = make_server()
    result = run(server, "--seeds", str(seeds), "-n", "5", "--dry-run", "--seed", "3")
    assert result.exit_code == 0, result.output
    assert '"api_key": "(set)"' in result.stdout and KEY not in result.stdout
    assert "First prompt:" in result.stdout and "numbered 9 to 15" in result.stdout
    assert server.requests == [] and not Path("data/run.json").exists()


def test_sigkill_mid_run_then_resume(make_server: MakeServer, seeds: Path) -> None:
    server = make_server(latency=0.02)
    argv = [
        *(sys.executable, "-m", "selfinstruct", "generate", "--no-progress"),
        *("--seeds", str(seeds), "--base-url", server.base_url, "--concurrency", "2"),
    ]
    env = {**os.environ, "OPENAI_API_KEY": KEY}
    out = Path("data/instructions.jsonl")
    for target in (20, 40):
        child = subprocess.Popen([*argv, "-n", str(target * 3)], env=env)
        deadline = time.monotonic() + 30
        while len(lines_safe(out)) < target and time.monotonic() < deadline:
            time.sleep(0.01)
        assert child.poll() is None, "the run ended before it was killed"
        child.send_signal(signal.SIGKILL)
        child.wait()
    before = out.read_bytes()
    done = subprocess.run([*argv, "-n", "120"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    after = out.read_bytes()
    complete_prefix = before[: before.rfind(b"\n") + 1]
    assert after.startswith(complete_prefix)  # nothing written before the kill was lost
    records = lines(out)
    assert len(records) == 120 and len({r["id"] for r in records}) == 120
    for path in Path("data").glob("*.jsonl"):
        assert path.read_bytes().endswith(b"\n")


def lines_safe(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_unknown_model_fails_fast(make_server: MakeServer, seeds: Path) -> None:
    server = make_server(models=["llama-3"])
    result = run(server, "--seeds", str(seeds), "-n", "5", "--model", "no-such-model")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: 404 from http://127.0.0.1:")
    assert "check --model and --base-url" in result.stderr
    assert len(server.requests) <= 8  # the requests already in flight, no retries


def test_max_cost_stops_cleanly(make_server: MakeServer, seeds: Path) -> None:
    server = make_server()
    args = ("--price-in", "1000", "--price-out", "1000", "--max-cost", "0.5", "--concurrency", "1")
    result = run(server, "--seeds", str(seeds), "-n", "100", *args)
    assert result.exit_code == 3 and "reached --max-cost $0.50" in result.stderr
    cost = float(re.search(r"cost\s+\$([\d.]+)", result.stdout).group(1))  # type: ignore[union-attr]
    per_request = cost / len(server.completed())
    assert 0.5 <= cost < 0.5 + 2 * per_request  # stopped right after the request that crossed it


def test_prompt_templates_can_be_overridden(make_server: MakeServer, seeds: Path) -> None:
    server = make_server()
    mine = Path("my_prompts")
    mine.mkdir()
    (mine / "generate_chat.txt").write_text("Our own words.\n{examples}\nNow {next} onwards.\n")
    assert run(server, "--seeds", str(seeds), "-n", "3", "--prompts", str(mine)).exit_code == 0
    assert prompt_of(server.bodies()[0]).startswith("Our own words.\n1. ")
    (mine / "generate_chat.txt").write_text("No examples here, {next}.\n")
    result = run(server, "-n", "6", "--prompts", str(mine))
    assert result.exit_code == 2
    assert (
        result.stderr == f"Error: {mine / 'generate_chat.txt'}: missing placeholder {{examples}}\n"
    )


def test_a_reply_with_broken_unicode_is_stored_with_replacement_characters(
    make_server: MakeServer, seeds: Path
) -> None:
    # A lone surrogate (half of an emoji, as "\ud83c" in the reply's JSON) cannot be written as
    # UTF-8: it must not stop the run, nor every later run that replays the cached reply.
    items = [
        "Describe the view from a mountain hut at dawn \ud83c in one sentence.",
        "Estimate how many tennis balls fit inside a standard school bus.",
    ]
    server = make_server(reply=numbered_reply(items))
    result = run(server, "--seeds", str(seeds), "-n", "2", "--concurrency", "1")
    assert result.exit_code == 0, result.output
    stored = [r["instruction"] for r in lines(Path("data/instructions.jsonl"))]
    assert stored == [items[0].replace("\ud83c", "\ufffd"), items[1]]


def test_a_chat_reply_gives_at_most_the_tasks_asked_for(
    make_server: MakeServer, seeds: Path
) -> None:
    rng = random.Random(3)
    # Every reply numbers 20 new tasks where 7 (9 to 15) were asked for.
    server = make_server(
        reply=lambda body: numbered_reply([make_instruction(rng, 0) for _ in range(20)])(body)
    )
    assert run(server, "--seeds", str(seeds), "-n", "10").exit_code == 0
    records, rejected = lines(Path("data/instructions.jsonl")), lines(REJECTS)
    first = records[0]["request"]
    assert sum(r["request"] == first for r in records + rejected) == 7


def test_examples_in_the_prompt_lose_a_trailing_colon(
    make_server: MakeServer, tmp_path: Path
) -> None:
    seeds = tmp_path / "colon.jsonl"
    texts = [f"{t.rstrip('.')} as shown below:" for t in SEED_TEXTS]
    seeds.write_text("".join(json.dumps({"instruction": t, "output": "ok"}) + "\n" for t in texts))
    server = make_server()
    assert run(server, "--seeds", str(seeds), "-n", "3", "--dry-run").exit_code == 0
    assert run(server, "--seeds", str(seeds), "-n", "3").exit_code == 0
    listed = re.findall(r"^\d+\. (.*)$", prompt_of(server.bodies()[0]), re.MULTILINE)
    assert len(listed) == 8 and all(t.endswith("as shown below") for t in listed[:8])
