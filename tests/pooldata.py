"""Small seed sets shared by the CLI tests."""

from __future__ import annotations

import json
from pathlib import Path

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
