"""`selfinstruct classify` and `selfinstruct instances` end to end against the fake server."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from selfinstruct.cli import app
from tests.fakeserver import FakeOpenAI, default_reply, prompt_text
from tests.pooldata import FAST, KEY, SEEDS, MakeServer, invoke, lines, write_config, write_seeds


@pytest.fixture(autouse=True)
def fast_retries() -> None:
    write_config(FAST + "max_consecutive_failures = 3\n")


def cli(server: FakeOpenAI, *args: str) -> Result:
    return invoke(server, *args, "--no-progress")


def pool_with(server: FakeOpenAI, n: int) -> None:
    write_seeds()
    assert cli(server, "generate", "--seeds", "seeds.jsonl", "-n", str(n)).exit_code == 0
    server.requests.clear()


def test_classify_every_instruction_once(make_server: MakeServer) -> None:
    server = make_server()
    pool_with(server, 20)
    result = cli(server, "classify")
    assert result.exit_code == 0, result.output
    records = lines("data/classifications.jsonl")
    assert sorted(r["id"] for r in records) == sorted(
        r["id"] for r in lines("data/instructions.jsonl")
    )
    yes = sum(r["is_classification"] is True for r in records)
    assert re.search(rf"yes\s+{yes}\b", result.stdout)
    assert re.search(rf"no\s+{20 - yes}\b", result.stdout)
    targets = [prompt_text(b).rsplit("Task:", 1)[1] for b in server.bodies()]
    assert not any(seed in t for seed in SEEDS for t in targets)  # seeds are never sent
    body = server.bodies()[0]
    assert body["temperature"] == 0.0 and body["max_tokens"] == 8
    again = cli(server, "classify")
    assert again.exit_code == 0 and "Nothing to do" in again.stdout
    assert len(server.requests) == 20


def test_unparsed_answer_is_retried_once_and_recorded(make_server: MakeServer) -> None:
    server = make_server()
    pool_with(server, 3)
    server.reply = lambda body: "Hard to say without more context."
    result = cli(server, "classify")
    assert result.exit_code == 0, result.output
    assert re.search(r"unparsed\s+3\b", result.stdout) and re.search(
        r"retried\s+3\b", result.stdout
    )
    assert len(server.completed()) == 6
    records = lines("data/classifications.jsonl")
    assert [r["is_classification"] for r in records] == [None] * 3
    assert records[0]["answer"] == "Hard to say without more context."
    assert cli(server, "instances").stdout.startswith("Nothing to do")


def test_instances_use_the_right_prompt_kind(make_server: MakeServer) -> None:
    server = make_server()
    pool_with(server, 12)
    assert cli(server, "classify").exit_code == 0
    server.requests.clear()
    result = cli(server, "instances")
    assert result.exit_code == 0, result.output
    flags = {r["id"]: r["is_classification"] for r in lines("data/classifications.jsonl")}
    records = lines("data/instances.jsonl")
    assert len(records) == 12
    for record in records:
        expected = "output_first" if flags[record["id"]] else "input_first"
        assert record["prompt_kind"] == expected
        assert record["instances"] and record["raw"] and record["finish_reason"] == "stop"
        if expected == "output_first":
            assert all(i["input"] for i in record["instances"])
    prompts = [prompt_text(b) for b in server.bodies()]
    kinds = Counter("Class label:" in p.split("Task:")[0] for p in prompts)
    assert kinds[True] == sum(flags.values())  # output-first header names class labels
    total = sum(len(r["instances"]) for r in records)
    assert re.search(rf"instances\s+{total}\b", result.stdout)


def test_chatty_replies_keep_every_instance_for_stage_4_to_sample(make_server: MakeServer) -> None:
    server = make_server()
    pool_with(server, 2)
    server.reply = lambda body: (
        " No"
        if "Is it classification?" in prompt_text(body)
        else "Sure! Here are examples:\n\n"
        + "".join(
            f"**Example {i}**\n**Input:** text {i}\n**Output:** answer {i}\n\n" for i in range(1, 8)
        )
        + "Let me know if you need more!"
    )
    assert cli(server, "classify").exit_code == 0
    assert cli(server, "instances", "--max-instances", "3").exit_code == 0
    for record in lines("data/instances.jsonl"):
        assert record["instances"] == [
            {"input": f"text {i}", "output": f"answer {i}"} for i in range(1, 8)
        ]
    assert invoke(None, "filter", "--max-instances", "3").exit_code == 0
    assert len(lines("data/dataset.jsonl")) == 2 * 3


def test_completions_api_prompts_end_where_the_model_continues(make_server: MakeServer) -> None:
    server = make_server()
    pool_with(server, 6)
    assert cli(server, "classify", "--api", "completions").exit_code == 0
    body = server.bodies()[0]
    assert body["prompt"].endswith("Is it classification?") and body["stop"] == ["\n", "Task:"]
    server.requests.clear()
    result = cli(server, "instances", "--api", "completions")
    assert result.exit_code == 0, result.output
    ends = Counter(b["prompt"].rsplit("\n", 1)[-1] for b in server.bodies())
    flags = [r["is_classification"] for r in lines("data/classifications.jsonl")]
    assert ends == Counter({"Class label:": sum(flags), "Example 1": len(flags) - sum(flags)})
    assert all(r["instances"] for r in lines("data/instances.jsonl"))


def test_budget_stop_then_resume(make_server: MakeServer) -> None:
    server = make_server()
    pool_with(server, 10)
    result = cli(server, "classify", "--max-requests", "4", "--concurrency", "2")
    assert result.exit_code == 3 and "reached --max-requests 4" in result.stderr
    assert len(lines("data/classifications.jsonl")) == 4
    assert cli(server, "classify").exit_code == 0
    ids = [r["id"] for r in lines("data/classifications.jsonl")]
    assert len(ids) == 10 and len(set(ids)) == 10


def test_failures_are_recorded_and_retried_next_run(make_server: MakeServer) -> None:
    server = make_server()
    pool_with(server, 5)
    server.fault_rate, server.fault_kinds = 1.0, ("500",)
    result = cli(server, "classify", "--max-retries", "0", "--concurrency", "1")
    assert result.exit_code == 1 and "Error: 3 consecutive failures" in result.stderr
    failures = lines("data/failures.jsonl")
    assert [f["stage"] for f in failures] == ["classify"] * 3
    assert not Path("data/classifications.jsonl").exists() or not lines(
        "data/classifications.jsonl"
    )
    server.fault_rate = 0.0
    assert cli(server, "classify").exit_code == 0
    assert len(lines("data/classifications.jsonl")) == 5


def test_sigkill_during_instances_then_resume(make_server: MakeServer) -> None:
    server = make_server(latency=0.03)
    pool_with(server, 40)
    assert cli(server, "classify").exit_code == 0
    server.requests.clear()
    argv = [sys.executable, "-m", "selfinstruct", "instances", "--no-progress"]
    argv += ["--base-url", server.base_url, "--concurrency", "2"]
    env = {**os.environ, "OPENAI_API_KEY": KEY}
    child = subprocess.Popen(argv, env=env)
    deadline = time.monotonic() + 30
    while len(lines_raw("data/instances.jsonl")) < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert child.poll() is None
    child.send_signal(signal.SIGKILL)
    child.wait()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    ids = [r["id"] for r in lines("data/instances.jsonl")]
    assert len(ids) == 40 and len(set(ids)) == 40
    paid = [json.dumps(r.body, sort_keys=True) for r in server.completed()]
    assert len(paid) - len(set(paid)) <= 2  # only what was in flight at the kill is asked again


def test_a_response_received_but_not_written_is_not_bought_again(make_server: MakeServer) -> None:
    server = make_server()
    pool_with(server, 8)
    assert cli(server, "classify").exit_code == 0
    assert cli(server, "instances").exit_code == 0
    written = Path("data/instances.jsonl").read_text()
    Path("data/instances.jsonl").write_text("")  # as if the run died after caching the replies
    server.requests.clear()
    result = cli(server, "instances")
    assert result.exit_code == 0, result.output
    assert server.requests == [] and re.search(r"8 from cache", result.stdout)
    assert sorted(Path("data/instances.jsonl").read_text().splitlines()) == sorted(
        written.splitlines()
    )


def lines_raw(path: str) -> list[str]:
    p = Path(path)
    return p.read_text().splitlines() if p.exists() else []


def test_default_reply_is_what_the_other_tests_rely_on() -> None:
    body = {
        "messages": [{"role": "user", "content": "Task: Sort the words.\nIs it classification?"}]
    }
    assert default_reply(body).strip() in ("Yes", "No")


def test_the_four_stages_end_to_end(make_server: MakeServer) -> None:
    server = make_server()
    pool_with(server, 30)
    for stage in ("classify", "instances"):
        assert cli(server, stage).exit_code == 0
    result = CliRunner().invoke(app, ["filter", "--include-seeds"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = lines("data/dataset.jsonl")
    assert len(rows) > 30 and len({r["id"] for r in rows}) == len(rows)
    assert all(
        set(r) == {"id", "instruction", "input", "output", "is_classification"} for r in rows
    )
    assert all(r["output"].strip() and r["input"] != r["output"] for r in rows)
    assert sum(r["id"].startswith("seed-") for r in rows) == len(SEEDS)
