"""A server that cannot be reached: a bad URL is a usage error, a dead one fails within seconds
and says why, and one that goes away mid-run still gets the patient retries and the breaker."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from pathlib import Path
from typing import Any

import openai
import pytest

from selfinstruct.config import Settings
from selfinstruct.llm.client import describe
from selfinstruct.llm.transport import connect
from tests.fakeserver import default_reply
from tests.pooldata import FAST, KEY, MakeServer, write_config, write_seeds
from tests.pooldata import invoke as cli

GENERATE = ("generate", "--seeds", "seeds.jsonl", "-n", "5", "--no-progress")


@pytest.fixture(autouse=True)
def setup() -> None:
    write_seeds()


def dead_url() -> str:
    """A loopback URL with nothing listening on its port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@pytest.mark.parametrize("url", ["not-a-url", "localhost:8000/v1", "ftp://example.com/v1"])
def test_a_base_url_that_is_not_http_is_a_usage_error(url: str) -> None:
    started = time.monotonic()
    result = cli(None, *GENERATE, "--base-url", url)
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: --base-url: {url!r} is not an http(s) URL; pass e.g. "
        "--base-url http://localhost:8000/v1\n"
    )
    assert time.monotonic() - started < 2 and not Path("data").exists()


@pytest.mark.parametrize(
    ("host", "why", "hint"),
    [
        (None, "connection refused", "is the server running? Start it or fix --base-url"),
        ("nonexistent.invalid", "name not resolved", "check the host name in --base-url"),
    ],
)
def test_a_server_never_reached_fails_within_seconds(host: str | None, why: str, hint: str) -> None:
    url = dead_url() if host is None else f"http://{host}/v1"
    started = time.monotonic()  # default backoff and breaker: what a user gets
    result = cli(None, *GENERATE, "--base-url", url, "--api-key", KEY)
    elapsed = time.monotonic() - started
    assert result.exit_code == 1
    assert re.fullmatch(
        rf"Error: cannot reach {re.escape(url)}: APIConnectionError \({why}\), "
        rf"\d+ tries over [5-9]s; {re.escape(hint)}\n",
        result.stderr,
    )
    assert elapsed < 10
    assert KEY not in result.output


def test_a_server_that_goes_away_gets_the_breaker(make_server: MakeServer) -> None:
    write_config(FAST + "max_consecutive_failures = 12\n")
    served = 0

    def then_gone(body: dict[str, Any]) -> str:
        nonlocal served
        served += 1
        if served == 3:  # after a few replies the server process "dies": connections refused
            threading.Thread(target=server.stop).start()
        return default_reply(body, salt=served)

    server = make_server(reply=then_gone)
    result = cli(server, *GENERATE[:4], "500", "--no-progress", "--concurrency", "1")
    assert result.exit_code == 1
    assert re.fullmatch(
        r"Error: 12 consecutive failures over \d+s, the last APIConnectionError \(connection "
        rf"refused\) from {re.escape(server.base_url)}; the pool is saved, re-run to continue\n",
        result.stderr,
    )


@pytest.mark.parametrize("worker", ["off", "on"])
def test_a_refused_connection_is_a_connection_error_not_a_timeout(worker: str) -> None:
    settings = Settings(base_url=dead_url(), api_key=KEY, http_worker=worker)

    async def attempt() -> BaseException:
        clients = connect(settings)
        try:
            await clients.post("/chat/completions", {"model": "gpt-4o-mini", "messages": []})
        except openai.APIError as e:
            return e
        finally:
            await clients.aclose()
        raise AssertionError("a dead port answered")

    error = asyncio.run(attempt())
    assert type(error) is openai.APIConnectionError
    assert describe(error) == "APIConnectionError (connection refused)"
