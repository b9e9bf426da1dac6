"""The HTTP worker process (`http_worker`): same replies and errors as the in-process client,
and it never outlives or outlasts the run that started it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import openai
import pytest

from selfinstruct.config import Settings
from selfinstruct.llm.client import describe, retry_after, server_message
from selfinstruct.llm.transport import Clients, WireClients, connect
from tests.fakeserver import FakeOpenAI, default_reply
from tests.pooldata import FAST, KEY, MakeServer, lines, write_config, write_seeds
from tests.pooldata import invoke as cli

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hi."}]}


@pytest.fixture(autouse=True)
def setup() -> None:
    write_config(FAST + 'http_worker = "on"\n')
    write_seeds()


def workers(pid: int) -> list[int]:
    """Live HTTP worker processes started by `pid`."""
    found = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        cmdline = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        if b"selfinstruct.llm.transport" in cmdline:
            found.append(int(child))
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def outcome(clients: Clients | WireClients) -> tuple[Any, ...]:
    """What LLM sees of one request: the reply, or the error's type and every detail it reads."""

    async def go() -> tuple[Any, ...]:
        try:
            reply = await clients.post("/chat/completions", BODY)
            return ("ok", reply["choices"], reply["usage"])
        except openai.APIStatusError as e:
            return (type(e), e.status_code, describe(e), server_message(e), retry_after(e))
        except openai.APIError as e:
            return (type(e), describe(e))
        except ValueError:  # JSONDecodeError here, MalformedReply there: both retried
            return ("malformed",)
        finally:
            await clients.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize(
    "fault", [None, "429", "500", "503", "drop", "hang", "malformed", "length", "401", "404"]
)
def test_worker_gives_the_same_reply_or_error_as_the_client(
    make_server: MakeServer, fault: str | None
) -> None:
    server = make_server(reply=lambda body: "Hello.", hang_seconds=1.0)
    settings: dict[str, Any] = {"base_url": server.base_url, "api_key": KEY, "timeout": 0.3}
    if fault == "401":
        settings["api_key"] = "sk-wrong-key-123456"
    elif fault == "404":
        settings["base_url"] = server.base_url.removesuffix("/v1") + "/v2"
    seen = []
    for worker in ("off", "on"):
        if fault in {"429", "500", "503", "drop", "hang", "malformed", "length"}:
            server.script(fault)
        clients = connect(Settings.model_validate({**settings, "http_worker": worker}))
        assert isinstance(clients, WireClients if worker == "on" else Clients)
        seen.append(outcome(clients))
    assert seen[0] == seen[1]
    if fault is None:
        assert seen[0][1][0]["message"]["content"] == "Hello."


def test_auto_uses_a_worker_from_64_requests_in_flight() -> None:
    base = {"base_url": "http://127.0.0.1:9/v1", "http_worker": "auto"}
    assert isinstance(connect(Settings.model_validate({**base, "concurrency": 63})), Clients)
    assert isinstance(connect(Settings.model_validate({**base, "concurrency": 64})), WireClients)


def test_run_through_the_worker_survives_faults(make_server: MakeServer) -> None:
    server = make_server(fault_rate=0.2, hang_seconds=1.0, seed=3)
    result = cli(server, "run", "--seeds", "seeds.jsonl", "-n", "20", "--timeout", "0.5")
    assert result.exit_code == 0, result.output
    assert len(lines("data/instructions.jsonl")) == 20 and lines("data/dataset.jsonl")
    faults = sum(r.fault not in (None, "length") for r in server.requests)
    stages = json.loads(Path("data/run.json").read_text())["stages"].values()
    assert faults > 0 and sum(s["usage"]["retries"] for s in stages) == faults
    assert workers(os.getpid()) == []  # the worker is gone with the run


def test_wrong_key_through_the_worker_fails_fast_without_leaking_it(
    make_server: MakeServer,
) -> None:
    server = make_server()
    secret = "sk-live-abcdefghijklmnop1234"
    result = cli(server, "run", "--seeds", "seeds.jsonl", "-n", "5", "--quiet", key=secret)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: 401 from {server.base_url}: Incorrect API key")
    assert secret not in result.output and "abcdefghijklmnop" not in result.output
    assert len(server.requests) <= 8  # no retries of a 401


def test_a_dead_worker_stops_the_run_and_the_next_run_finishes(make_server: MakeServer) -> None:
    me, calls = os.getpid(), []

    def reply(body: dict[str, Any]) -> str:
        calls.append(1)
        if len(calls) == 6:
            for pid in workers(me):
                os.kill(pid, signal.SIGKILL)
        return default_reply(body, len(calls))

    server = make_server(reply=reply)
    result = cli(server, "run", "--seeds", "seeds.jsonl", "-n", "15", "--quiet")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: the HTTP worker process exited (code -9); the pool is saved, re-run to continue"
        ' (http_worker = "off" in selfinstruct.toml sends requests from this process)\n'
    )
    for path in Path("data").glob("*.jsonl"):
        assert path.read_bytes().endswith(b"\n")
    result = cli(server, "run", "--quiet")
    assert result.exit_code == 0, result.output
    ids = [r["id"] for r in lines("data/instructions.jsonl")]
    assert len(ids) == 15 == len(set(ids))


def spawn(server: FakeOpenAI, *args: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "selfinstruct", "run", "--quiet", *args]
    argv += ["--base-url", server.base_url, "--api-key", KEY]
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    return subprocess.Popen(
        argv,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def started_worker(server: FakeOpenAI, child: subprocess.Popen[str]) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and child.poll() is None:
        if server.requests and (found := workers(child.pid)):
            return found[0]
        time.sleep(0.01)
    raise AssertionError("no worker process seen")


def test_killing_the_run_takes_the_worker_down(make_server: MakeServer) -> None:
    server = make_server(latency=0.3)
    child = spawn(server, "--seeds", "seeds.jsonl", "-n", "200")
    worker = started_worker(server, child)
    cmdline = Path(f"/proc/{worker}/cmdline").read_bytes()
    environ = Path(f"/proc/{worker}/environ").read_bytes()
    assert KEY.encode() not in cmdline and KEY.encode() not in environ
    child.kill()
    child.communicate(timeout=10)
    deadline = time.monotonic() + 10
    while alive(worker) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not alive(worker)


def test_ctrl_c_to_the_process_group_stops_cleanly(make_server: MakeServer) -> None:
    server = make_server(latency=0.3)
    child = spawn(server, "--seeds", "seeds.jsonl", "-n", "200", "--concurrency", "4")
    worker = started_worker(server, child)
    while not lines("data/instructions.jsonl") and child.poll() is None:
        time.sleep(0.01)
    started = time.monotonic()
    os.killpg(child.pid, signal.SIGINT)  # what a terminal sends: the worker gets it too
    _, err = child.communicate(timeout=30)
    assert child.returncode == 130, err
    assert time.monotonic() - started < 5
    assert "Error: interrupted by SIGINT; the pool is saved - re-run to continue" in err
    for path in Path("data").glob("*.jsonl"):
        assert path.read_bytes().endswith(b"\n")
    assert not alive(worker)


def test_a_worker_that_cannot_start_says_how_to_go_on(
    make_server: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_server()
    monkeypatch.setattr("selfinstruct.llm.transport.sys.executable", "/bin/false")
    result = cli(server, "run", "--seeds", "seeds.jsonl", "-n", "5", "--quiet")
    assert result.exit_code == 1 and server.requests == []
    assert result.stderr.startswith("Error: the HTTP worker process exited (code 1);")
    write_config(FAST + 'http_worker = "off"\n')
    result = cli(server, "run", "--quiet")
    assert result.exit_code == 0, result.output
    assert len(lines("data/instructions.jsonl")) == 5
