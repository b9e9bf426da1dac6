"""What the CLI tests share: seed sets, the test API key, config and JSONL helpers, and a
CLI runner pointed at a fake server."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from selfinstruct.cli import app
from tests.fakeserver import FakeOpenAI

KEY = "sk-test"
MakeServer = Callable[..., FakeOpenAI]
FAST = "retry_backoff = 0.01\n"

SEEDS = [
    "Suggest a name for a bakery that specializes in sourdough bread.",
    "Classify the following sentence as a question or a statement.",
    "Give three tips for keeping houseplants alive during winter.",
    "Translate the phrase below into Spanish.",
    "Summarize the main argument of the paragraph in one sentence.",
    "Decide whether the review is positive or negative.",
    "Compose a short thank-you note to a neighbour who watered my garden.",
    "List the planets of the solar system in order of distance from the sun.",
]


def write_seeds(path: Path = Path("seeds.jsonl"), texts: list[str] = SEEDS) -> Path:
    """Alpaca-style seed lines, one per text."""
    path.write_text("".join(json.dumps({"instruction": t, "output": "ok"}) + "\n" for t in texts))
    return path


def write_config(text: str) -> None:
    """`selfinstruct.toml` in the current directory."""
    Path("selfinstruct.toml").write_text(text)


def lines(path: str | Path) -> list[dict[str, Any]]:
    """The records of a JSONL file; [] if it does not exist."""
    p = Path(path)
    return [json.loads(line) for line in p.read_text().splitlines()] if p.exists() else []


def invoke(server: FakeOpenAI | None, *args: str, key: str | None = KEY) -> Result:
    """Run the CLI in-process with `--base-url` of `server` and `key` as OPENAI_API_KEY.

    No server: neither (an offline command); key None: no OPENAI_API_KEY."""
    argv = list(args)
    env: dict[str, str] = {}
    if server is not None:
        argv += ["--base-url", server.base_url]
        if key is not None:
            env["OPENAI_API_KEY"] = key
    return CliRunner(env=env).invoke(app, argv, catch_exceptions=False)
