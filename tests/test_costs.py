"""True costs: prices from genai-prices (offline), cached prompt tokens at their price, in the
spend journal, the Batch API path, the summaries and `status`."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from selfinstruct.cli import app
from selfinstruct.pricing import Prices, cost, known_prices, price_for
from selfinstruct.store.cache import connect, spend_since
from tests.fakecache import PrefixCache
from tests.fakeserver import FakeOpenAI
from tests.pooldata import FAST, MakeServer, write_config, write_seeds
from tests.pooldata import invoke as cli

needs_library = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="genai-prices needs Python 3.11 (3.10 uses the table)"
)


@needs_library
def test_prices_come_from_genai_prices_with_the_cached_price() -> None:
    # OpenAI's list prices for gpt-4o-mini: $0.15 in, $0.075 cached in, $0.60 out per 1M.
    for model in ("gpt-4o-mini", "gpt-4o-mini-2024-07-18"):
        prices = known_prices(model)
        assert prices is not None and prices.source.startswith("genai-prices")
        assert (prices.input, prices.cached_input, prices.output) == pytest.approx(
            (0.15, 0.075, 0.60)
        )
    # A provider's own price list, found from --base-url (OpenRouter names models vendor/name).
    routed = known_prices("openai/gpt-4o-mini", "https://openrouter.ai/api/v1")
    assert routed is not None and "openrouter" in routed.source
    assert known_prices("gemini-2.5-flash", "https://generativelanguage.googleapis.com/v1beta/")
    # What the data lacks comes from the table; a self-hosted model has no price.
    davinci = known_prices("davinci-002")
    assert davinci is not None and davinci.source == "built-in table"
    assert davinci.cached_input == davinci.input == 2.0
    assert known_prices("Qwen/Qwen2.5-7B-Instruct", "http://localhost:8000/v1") is None


def test_cached_tokens_cost_their_price() -> None:
    prices = Prices(0.15, 0.60, 0.075, "test")
    # 1,000 prompt tokens of which 400 cached, 200 completion tokens:
    # 600 x 0.15 + 400 x 0.075 + 200 x 0.60 = 90 + 30 + 120 = 240 per million -> $0.00024.
    assert cost(prices, 1000, 200, 400) == pytest.approx(0.00024)
    assert cost(prices, 1000, 200, 400, batch=True) == pytest.approx(0.00012)
    assert cost(prices, 1000, 200) == pytest.approx(0.00027)  # nothing cached
    assert cost(prices, 1000, 200, 5000) == pytest.approx(0.000195)  # never more than prompt
    assert cost(None, 1000, 200, 400) is None


@needs_library
def test_flags_override_each_part() -> None:
    only_in = price_for("gpt-4o-mini", 1.0, None)
    assert only_in is not None and only_in.input == 1.0 and only_in.output == pytest.approx(0.6)
    assert only_in.cached_input == pytest.approx(0.075) and "--price-in" in only_in.source
    cached = price_for("gpt-4o-mini", None, None, 0.01)
    assert cached is not None and cached.cached_input == 0.01 and cached.input == 0.15
    # An unknown model: a part not given is 0, and a cached token costs the prompt price.
    unknown = price_for("my-model", 2.0, 3.0)
    assert unknown == Prices(2.0, 3.0, 2.0, "--price-in/--price-out/--price-cached")
    assert price_for("my-model", None, None) is None


PROBE = """
import socket, sys
reached = []
sys.addaudithook(lambda event, args: reached.append(event) if event in (
    "socket.connect", "socket.getaddrinfo", "socket.gethostbyname") else None)
from selfinstruct.pricing import known_prices
prices = known_prices("gpt-4o-mini")
assert prices is not None and prices.source.startswith("genai-prices"), prices
print(reached)
"""


@needs_library
def test_prices_are_looked_up_without_the_network() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def paid(server: FakeOpenAI) -> tuple[int, int, int]:
    """Prompt, cached and completion tokens the server billed."""
    usage = [r.usage for r in server.completed() if r.usage is not None]
    cached = sum(u["prompt_tokens_details"]["cached_tokens"] for u in usage)
    return (
        sum(u["prompt_tokens"] for u in usage),
        cached,
        sum(u["completion_tokens"] for u in usage),
    )


def status() -> tuple[dict[str, Any], str]:
    runner = CliRunner()
    data = json.loads(runner.invoke(app, ["status", "--json"]).stdout)
    return data, runner.invoke(app, ["status"]).stdout


def test_cached_tokens_are_counted_and_priced_end_to_end(make_server: MakeServer) -> None:
    write_config(FAST)
    write_seeds()
    server = make_server(prefix_cache=PrefixCache(block=16, minimum=0))
    prices = ("--price-in", "1", "--price-out", "2", "--price-cached", "0.25")
    first = cli(server, "generate", "--seeds", "seeds.jsonl", "-n", "10", "--no-progress")
    assert first.exit_code == 0, first.output
    server.requests.clear()
    result = cli(server, "classify", "--no-progress", "--concurrency", "1", *prices)
    assert result.exit_code == 0, result.output
    prompt, cached, completion = paid(server)
    # classify's prompt is a long fixed part and the instruction last: all but the first of
    # its requests read the fixed part from the cache.
    assert cached > 0.8 * prompt
    expected = ((prompt - cached) * 1 + cached * 0.25 + completion * 2) / 1e6
    share = f"{cached / prompt:.0%}"
    assert f"{prompt} prompt ({cached} cached, {share}) + {completion} completion" in result.stdout
    assert f"${expected:.4f}" in result.stdout
    data, text = status()
    spent = data["usage"]["classify"]
    assert spent["cached_tokens"] == cached and spent["cost"] == pytest.approx(expected)
    assert re.search(rf"classify .*{share} of the prompt tokens cached\), \${expected:.4f}", text)
    run_json = json.loads(Path("data/run.json").read_text())
    assert run_json["stages"]["classify"]["totals"]["cached_tokens"] == cached


def test_batch_results_count_cached_tokens_at_the_batch_price(make_server: MakeServer) -> None:
    write_config(FAST)
    write_seeds()
    server = make_server(prefix_cache=PrefixCache(block=16, minimum=0))
    prices = ("--price-in", "1", "--price-out", "2", "--price-cached", "0.1")
    assert (
        cli(server, "generate", "--seeds", "seeds.jsonl", "-n", "6", "--no-progress").exit_code == 0
    )
    server.requests.clear()
    assert cli(server, "classify", "--batch", *prices).exit_code == 0
    [batch_id] = server.finish_batches()
    store = server.files_batches
    usage = [
        o["response"]["body"]["usage"]
        for o in store.lines(store.batches[batch_id]["output_file_id"])
    ]
    cached = sum(u["prompt_tokens_details"]["cached_tokens"] for u in usage)
    assert cached > 0
    full = sum(
        (u["prompt_tokens"] - c) * 1 + c * 0.1 + u["completion_tokens"] * 2
        for u in usage
        for c in [u["prompt_tokens_details"]["cached_tokens"]]
    )
    collected = cli(server, "batch", "collect", *prices)
    assert collected.exit_code == 0, collected.output
    assert f"${full / 2e6:.4f} (batch price" in collected.stdout
    spent = status()[0]["usage"]["classify"]
    assert spent["cached_tokens"] == cached and spent["cost"] == pytest.approx(full / 2e6)


def test_a_cache_from_before_cached_tokens_is_migrated() -> None:
    path = Path("cache.sqlite")
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE spend (id INTEGER PRIMARY KEY AUTOINCREMENT, stage TEXT NOT NULL,"
        " prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, cost REAL,"
        " batched INTEGER NOT NULL, created REAL NOT NULL)"
    )
    old.execute("INSERT INTO spend VALUES (1, 'classify', 100, 5, 0.001, 0, 0)")
    old.commit()
    old.close()
    spent, last = spend_since(path, 0)  # `status` reads an old cache as it is
    assert spent["classify"]["cached_tokens"] == 0 and last == 1
    connect(path).close()  # a run opens it: the column is added, the rows kept
    spent, _ = spend_since(path, 0)
    assert spent["classify"] == {
        "requests": 1,
        "batched": 0,
        "prompt_tokens": 100,
        "completion_tokens": 5,
        "cached_tokens": 0,
        "cost": 0.001,
    }


@needs_library
def test_dry_run_shows_the_prices_and_where_they_come_from() -> None:
    write_seeds()
    shown = cli(None, "generate", "--seeds", "seeds.jsonl", "--dry-run")
    assert shown.exit_code == 0, shown.output
    settings = json.loads(shown.stdout.split("\n\nFirst prompt:", 1)[0])
    assert settings["prices"].startswith("$0.15 prompt, $0.075 cached prompt, $0.6 completion")
    assert "genai-prices" in settings["prices"]
    flagged = cli(None, "generate", "--seeds", "seeds.jsonl", "--dry-run", "--price-cached", "0")
    assert "$0 cached prompt" in flagged.stdout and "--price-cached over genai" in flagged.stdout
