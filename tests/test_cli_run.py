"""`selfinstruct run` and `status`: the pipeline as cron runs it, and how it survives trouble."""

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
from typer.testing import CliRunner

from selfinstruct.cli import app
from tests.fakecorpus import make_instruction
from tests.fakeserver import FakeOpenAI, Recorded, continue_numbering, default_reply, prompt_text
from tests.pooldata import FAST, KEY, MakeServer, lines, write_config, write_seeds
from tests.pooldata import invoke as cli


@pytest.fixture(autouse=True)
def setup() -> None:
    write_config(FAST)
    write_seeds()


def spawn(server: FakeOpenAI, *args: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "selfinstruct", "run", "--quiet", *args]
    argv += ["--base-url", server.base_url]
    env = {**os.environ, "OPENAI_API_KEY": KEY}
    return subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for(path: str, count: int, child: subprocess.Popen[str], limit: float = 30) -> None:
    deadline = time.monotonic() + limit
    while len(lines_of(path)) < count and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.01)
    assert child.poll() is None, "the run ended before the test could interrupt it"


def lines_of(path: str) -> list[str]:
    p = Path(path)
    return p.read_bytes().decode(errors="replace").splitlines() if p.exists() else []


def test_run_reaches_the_target_then_has_nothing_to_do(make_server: MakeServer) -> None:
    server = make_server()
    result = cli(server, "run", "--seeds", "seeds.jsonl", "-n", "24", "--quiet")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # --quiet
    rows = lines("data/dataset.jsonl")
    assert len(lines("data/instructions.jsonl")) == 24 and rows
    assert (
        len(lines("data/classifications.jsonl")) == 24 and len(lines("data/instances.jsonl")) == 24
    )
    sent = len(server.requests)
    again = cli(server, "run")
    assert (
        again.exit_code == 0
        and again.stdout.strip() == "Nothing to do: data is at its target of 24."
    )
    assert len(server.requests) == sent
    more = cli(server, "run", "--add", "6")
    assert more.exit_code == 0, more.output
    assert re.search(r"instructions\s+30 / 30 \(\+6,", more.stdout)
    assert len(lines("data/instances.jsonl")) == 30
    assert json.loads(Path("data/run.json").read_text())["run"]["target"] == 30


def test_stages_overlap(make_server: MakeServer) -> None:
    rng = random.Random(5)

    def slow_generation(body: dict[str, Any]) -> str:
        if "Continue the list" in prompt_text(body):
            time.sleep(0.1)  # while stage 1 waits, stages 2 and 3 use the free slots
            return continue_numbering(body, [make_instruction(rng, 0.0) for _ in range(2)])
        return default_reply(body)

    server = make_server(reply=slow_generation)
    result = cli(server, "run", "--seeds", "seeds.jsonl", "-n", "30", "--quiet")
    assert result.exit_code == 0, result.output

    def kind(p: str) -> str:
        return (
            "classify"
            if "Is it classification?" in p
            else ("generate" if "Continue the list" in p else "instances")
        )

    sent: dict[str, list[Recorded]] = {}
    for r in server.requests:
        sent.setdefault(kind(prompt_text(r.body or {})), []).append(r)
    generating_until = max(r.answered or 0.0 for r in sent["generate"])
    # stages 2 and 3 were on the wire while stage 1 was still generating
    assert min(r.arrived for r in sent["classify"]) < generating_until
    assert min(r.arrived for r in sent["instances"]) < generating_until


def test_no_target_yet(make_server: MakeServer) -> None:
    server = make_server()
    result = cli(server, "run", "--seeds", "seeds.jsonl")
    assert result.exit_code == 2
    assert result.stderr == "Error: the pool data has no target yet; pass --num-instructions N\n"


def test_second_concurrent_run_is_refused(make_server: MakeServer) -> None:
    server = make_server(latency=0.1)
    first = spawn(server, "--seeds", "seeds.jsonl", "-n", "200", "--concurrency", "2")
    wait_for("data/instructions.jsonl", 1, first)
    second = spawn(server, "-n", "200")
    out, err = second.communicate(timeout=30)
    assert second.returncode == 75
    assert err.startswith("Error: the pool data is in use by another selfinstruct run (pid ")
    assert len(err.strip().splitlines()) == 1
    status = CliRunner().invoke(app, ["status", "--json"])
    assert json.loads(status.stdout)["lock"].startswith(f"pid {first.pid}, started ")
    first.kill()
    first.wait()


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_stops_cleanly(make_server: MakeServer, sig: int, code: int) -> None:
    server = make_server(latency=0.3)
    child = spawn(server, "--seeds", "seeds.jsonl", "-n", "200", "--concurrency", "4")
    wait_for("data/instructions.jsonl", 1, child)
    started = time.monotonic()
    child.send_signal(sig)
    out, err = child.communicate(timeout=30)
    assert child.returncode == code
    assert time.monotonic() - started < 5  # in-flight requests finish, nothing new starts
    name = signal.Signals(sig).name
    assert f"Error: interrupted by {name}; the pool is saved - re-run to continue" in err
    for path in Path("data").glob("*.jsonl"):
        assert path.read_bytes().endswith(b"\n")
    status = json.loads(CliRunner().invoke(app, ["status", "--json"]).stdout)
    assert status["lock"] is None and status["last_run"]["outcome"].startswith("error: interrupted")


def test_second_ctrl_c_exits_at_once(make_server: MakeServer) -> None:
    server = make_server(latency=3.0)
    child = spawn(server, "--seeds", "seeds.jsonl", "-n", "50")
    deadline = time.monotonic() + 20
    while not server.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    child.send_signal(signal.SIGINT)
    time.sleep(0.3)
    started = time.monotonic()
    child.send_signal(signal.SIGINT)
    child.communicate(timeout=10)
    assert child.returncode == 130 and time.monotonic() - started < 1.5


def test_circuit_breaker_stops_a_dead_server(make_server: MakeServer) -> None:
    server = make_server(fault_rate=1.0, fault_kinds=["503"])
    write_config(FAST + "max_consecutive_failures = 12\n")
    result = cli(
        server, "run", "--seeds", "seeds.jsonl", "-n", "10", "--quiet", "--log-file", "cron.log"
    )
    assert result.exit_code == 1
    assert re.fullmatch(
        r"Error: 12 consecutive failures over \d+s, the last 503 Service Unavailable from "
        rf"{re.escape(server.base_url)}; the pool is saved, re-run to continue\n",
        result.stderr,
    )
    assert "Error: 12 consecutive failures" in Path("cron.log").read_text()
    assert len(server.requests) == 12


def test_adaptive_concurrency_under_a_rate_limit(make_server: MakeServer) -> None:
    server = make_server(latency=0.05, rate_limit=40.0, burst=4, retry_after=0.0)
    result = cli(
        server, "run", "--seeds", "seeds.jsonl", "-n", "80", "--concurrency", "32", "--quiet"
    )
    assert result.exit_code == 0, result.output
    limited = sum(r.fault == "429" for r in server.requests)
    assert limited < len(server.requests) / 2  # without backing off, most would be refused
    late = [r.in_flight for r in server.requests[len(server.requests) // 2 :]]
    assert sorted(late)[len(late) // 2] < 16  # the limit came down from 32


def test_adaptive_concurrency_follows_latency_without_429s(make_server: MakeServer) -> None:
    server = make_server(latency=0.05, slots=2)  # a vLLM-like server: it queues, never refuses
    result = cli(server, "run", "--seeds", "seeds.jsonl", "-n", "60", "--concurrency", "32")
    assert result.exit_code == 0, result.output
    assert not any(r.fault for r in server.requests)
    early = max(r.in_flight for r in server.requests[:40])
    late = [r.in_flight for r in server.requests[len(server.requests) // 2 :]]
    assert early > 16  # it started at 32 in flight...
    assert sorted(late)[len(late) // 2] <= 12  # ...and came down as the server's queue grew
    limit = json.loads(Path("data/run.json").read_text())["run"]["concurrency"]
    assert limit["ceiling"] == 32 and limit["cuts"] >= 2 and limit["lowest"] <= 8
    lowered = f"lowered {limit['cuts']} times (to {limit['lowest']} at the lowest)"
    assert re.search(rf"concurrency\s+32, {re.escape(lowered)}", result.stdout)


def test_longer_answers_are_not_mistaken_for_a_queue(make_server: MakeServer) -> None:
    # Latency grows with max_tokens (8 to classify, 1024 to generate), never with load: the
    # stages' different reply times must not bring the limit down.
    server = make_server(latency=0.05, token_latency=0.001)
    result = cli(server, "run", "--seeds", "seeds.jsonl", "-n", "60", "--concurrency", "32")
    assert result.exit_code == 0, result.output
    assert json.loads(Path("data/run.json").read_text())["run"]["concurrency"] == {
        "ceiling": 32,
        "cuts": 0,
        "lowest": 32,
    }
    assert re.search(r"concurrency\s+32\n", result.stdout)
    status = CliRunner().invoke(app, ["status"]).stdout
    assert re.search(r"last run .*: done; concurrency 32\n", status)


def test_status_json_counts(make_server: MakeServer) -> None:
    server = make_server()
    assert cli(server, "run", "--seeds", "seeds.jsonl", "-n", "12", "--quiet").exit_code == 0
    status = json.loads(CliRunner().invoke(app, ["status", "--json"]).stdout)
    classes = lines("data/classifications.jsonl")
    assert status["target"] == 12 and status["generate"]["done"] == 12
    assert status["classify"]["yes"] == sum(c["is_classification"] is True for c in classes)
    assert status["classify"]["pending"] == 0 and status["instances"]["pending"] == 0
    assert status["filter"]["dataset"] == len(lines("data/dataset.jsonl"))
    assert status["usage"]["generate"]["requests"] > 0 and status["lock"] is None
    text = CliRunner().invoke(app, ["status"]).stdout
    usage = status["usage"]
    for stage in ("generate", "classify", "instances"):  # each stage's tokens and cost
        tokens = usage[stage]["prompt_tokens"] + usage[stage]["completion_tokens"]
        cost = f"${usage[stage]['cost']:.4f}"
        assert re.search(
            rf"{stage}\s+.*failed requests; {tokens} tokens, {re.escape(cost)}\n", text
        )
    assert re.search(r"generate\s+12 / 12 instructions, 0 failed requests", text)
    total = sum(u["prompt_tokens"] + u["completion_tokens"] for u in usage.values())
    assert re.search(rf"spent\s+{total} tokens, \$\d+\.\d{{4}}\n", text)
    assert "lock       free" in text


def test_status_says_when_prices_are_unknown(make_server: MakeServer) -> None:
    server = make_server(models=["my-local-model"])
    run = cli(server, "run", "--seeds", "seeds.jsonl", "-n", "3", "--model", "my-local-model")
    assert run.exit_code == 0, run.output
    text = CliRunner().invoke(app, ["status"]).stdout
    assert re.search(r"spent\s+\d+ tokens, cost n/a \(unknown prices\)\n", text)
    assert "$0.0000" not in text  # an unknown cost is not a zero one
