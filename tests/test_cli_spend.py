"""What a pool paid adds up across killed runs: `status`, run.json and the run's summary count
every response the server billed, from the cache's spend journal, never a replay twice."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from selfinstruct.cli import app
from selfinstruct.config import ClassifySettings, GenerateSettings, InstancesSettings
from selfinstruct.pricing import Prices, cost
from tests.fakeserver import FakeOpenAI, Refuse, default_reply
from tests.pooldata import FAST, KEY, MakeServer, lines, write_config, write_seeds
from tests.pooldata import invoke as cli

STAGES = {  # the stages' requests told apart by their default max_tokens
    GenerateSettings().max_tokens: "generate",
    ClassifySettings().max_tokens: "classify",
    InstancesSettings().max_tokens: "instances",
}
PAID = ("requests", "prompt_tokens", "completion_tokens")


@pytest.fixture(autouse=True)
def setup() -> None:
    write_config(FAST)
    write_seeds()


class Gate:
    """Holds the server's replies while closed. A reply held when its run is killed is never
    sent (a 500 to nobody), so the server bills exactly what reached the client."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.opened.set()
        self.generation = 0
        self.salt = itertools.count()

    def reply(self, body: dict[str, Any]) -> str:
        mine = self.generation
        self.opened.wait()
        if self.generation != mine:
            raise Refuse(500)  # its client was killed
        return default_reply(body, salt=next(self.salt))

    def close(self) -> None:
        self.opened.clear()
        time.sleep(1.0)  # replies already on their way are received and stored by now

    def reopen(self) -> None:
        self.generation += 1
        self.opened.set()


GPT_4O_MINI = Prices(0.15, 0.60, 0.075, "its list price")


def billed(server: FakeOpenAI) -> dict[str, dict[str, Any]]:
    """Per stage, what the server charged for: requests, tokens, and USD at gpt-4o-mini's prices."""
    bill: dict[str, dict[str, Any]] = {}
    for r in server.completed():
        assert r.usage is not None and r.body is not None
        stage = bill.setdefault(
            STAGES[r.body["max_tokens"]], dict.fromkeys(PAID, 0) | {"cost": 0.0}
        )
        stage["requests"] += 1
        stage["prompt_tokens"] += r.usage["prompt_tokens"]
        stage["completion_tokens"] += r.usage["completion_tokens"]
        stage["cost"] += cost(GPT_4O_MINI, r.usage["prompt_tokens"], r.usage["completion_tokens"])
    return bill


def assert_adds_up(usage: dict[str, dict[str, Any]], bill: dict[str, dict[str, Any]]) -> None:
    assert set(usage) == set(bill)
    for stage, paid in bill.items():
        assert {k: usage[stage][k] for k in PAID} == {k: paid[k] for k in PAID}, stage
        assert usage[stage]["cost"] == pytest.approx(paid["cost"], abs=1e-8), stage


def status() -> tuple[dict[str, Any], str]:
    runner = CliRunner()
    return json.loads(runner.invoke(app, ["status", "--json"]).stdout), runner.invoke(
        app, ["status"]
    ).stdout


def spawn(server: FakeOpenAI, *args: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "selfinstruct", "run", "--quiet", *args]
    argv += ["--base-url", server.base_url, "--concurrency", "4"]
    env = {**os.environ, "OPENAI_API_KEY": KEY}
    return subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def wait_for(count: int, child: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while len(lines("data/instances.jsonl")) < count and time.monotonic() < deadline:
        assert child.poll() is None, "the run ended before the test could kill it"
        time.sleep(0.02)


def test_spend_adds_up_across_sigkills(make_server: MakeServer) -> None:
    gate = Gate()
    server = make_server(reply=gate.reply, latency=0.02)
    for kill in range(2):
        child = spawn(server, "--seeds", "seeds.jsonl", "-n", "40")
        wait_for(4 + 8 * kill, child)
        gate.close()
        if kill == 0:  # mid-run: the spend so far, and the run in progress
            data, text = status()
            assert_adds_up(data["usage"], billed(server))
            assert data["last_run"]["outcome"] == "running"
            assert re.search(r"last run\s+running since \d{4}-\d\d-\d\dT[\d:]+[+-]\d{4}\n", text)
        child.send_signal(signal.SIGKILL)
        child.wait()
        gate.reopen()
    data, text = status()
    assert_adds_up(data["usage"], billed(server))  # two killed runs, nothing lost
    assert "killed (it never finished; the pool is saved)" in text
    bill = billed(server)
    tokens = sum(b["prompt_tokens"] + b["completion_tokens"] for b in bill.values())
    total = sum(b["cost"] for b in bill.values())
    assert re.search(rf"spent\s+{tokens} tokens, \${total:.4f}\n", text)

    result = cli(server, "run")  # finishes, replaying what the killed runs bought: not paid again
    assert result.exit_code == 0, result.output
    bill = billed(server)
    data, text = status()
    assert_adds_up(data["usage"], bill)
    totals = {
        s: e["totals"] for s, e in json.loads(Path("data/run.json").read_text())["stages"].items()
    }
    assert_adds_up(totals, bill)
    tokens = sum(b["prompt_tokens"] + b["completion_tokens"] for b in bill.values())
    total = sum(b["cost"] for b in bill.values())
    assert re.search(rf"spent\s+{tokens} tokens, \${total:.4f}\n", text)
    assert re.search(rf"spent, all runs\s+{tokens} tokens, \${total:.4f}\n", result.stdout)
    print(f"billed by the server: {bill}")


def test_batch_results_are_billed_once_at_the_batch_price(make_server: MakeServer) -> None:
    server = make_server()
    prices = ("--price-in", "1", "--price-out", "2")
    assert (
        cli(server, "generate", "--seeds", "seeds.jsonl", "-n", "6", "--no-progress").exit_code == 0
    )
    assert cli(server, "classify", "--batch", *prices).exit_code == 0
    [batch_id] = server.finish_batches()
    store = server.files_batches
    usage = [
        o["response"]["body"]["usage"]
        for o in store.lines(store.batches[batch_id]["output_file_id"])
    ]
    full = sum(u["prompt_tokens"] * 1 + u["completion_tokens"] * 2 for u in usage) / 1e6
    for _ in range(2):  # collected, then nothing more to collect: counted once
        assert cli(server, "batch", "collect", *prices).exit_code == 0
        spent = status()[0]["usage"]["classify"]
        assert spent["requests"] == spent["batched"] == len(usage) == 6
        assert spent["prompt_tokens"] == sum(u["prompt_tokens"] for u in usage)
        assert spent["cost"] == pytest.approx(full / 2)
