"""What a dataset costs with each recipe: the paper's (four stages) against Stanford Alpaca's.

    python -m bench.cost                       # 1,000 dataset rows each, gpt-4o-mini's prices
    python -m bench.cost --rows 500 --model gpt-4.1

(from the repository's root: it imports the test helpers as `tests.*`)

Runs `selfinstruct run` (a subprocess, as a user would) against the fake server, once with the
default preset and once with `--preset alpaca`, each in a new pool from the project's seeds,
growing the target (`--add`) until the dataset holds at least `--rows` rows. Prints, per 1,000
dataset rows, the requests, prompt and completion tokens (as run.json totals them) and the cost
at `--model`'s list prices (online and with the Batch API). The fake server's toy model writes
plausible lengths and counts 1.3 tokens a word; a real model's replies are longer, so read the
ratios between the recipes, not the absolute figures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from selfinstruct.pricing import BATCH_DISCOUNT, cost, price_for
from tests.fakeserver import FakeOpenAI

SEEDS = Path(__file__).resolve().parents[1] / "seeds" / "seed_tasks.jsonl"
RECIPES = {"self-instruct": "the paper's recipe", "alpaca": "Stanford Alpaca's"}


@dataclass
class Spent:
    rows: int
    instructions: int
    requests: int
    prompt_tokens: int
    completion_tokens: int

    def per_thousand(self, value: float) -> float:
        return value * 1000 / self.rows


def lines(path: Path) -> int:
    return sum(1 for _ in path.open()) if path.exists() else 0


def run(server: FakeOpenAI, pool: Path, preset: str, model: str, *target: str) -> None:
    argv = ["run", "--pool", str(pool), "--preset", preset, "--model", model, *target]
    argv += ["--seeds", str(SEEDS), "--base-url", server.base_url, "--quiet", "--seed", "0"]
    env = {**os.environ, "OPENAI_API_KEY": "sk-test"}
    done = subprocess.run([sys.executable, "-m", "selfinstruct", *argv], env=env, cwd=pool.parent)
    if done.returncode != 0:
        sys.exit(f"selfinstruct run --preset {preset} exited {done.returncode}")


def measure(preset: str, rows: int, model: str) -> Spent:
    """Grow a new pool until its dataset holds `rows` rows; what run.json says it spent."""
    with FakeOpenAI() as server, tempfile.TemporaryDirectory() as tmp:
        pool = Path(tmp) / "pool"
        guess = 2.0 if preset == "self-instruct" else 0.9  # dataset rows per instruction
        run(server, pool, preset, model, "-n", str(math.ceil(rows / guess)))
        while (have := lines(pool / "dataset.jsonl")) < rows:
            rate = max(0.5, have / lines(pool / "instructions.jsonl"))
            run(server, pool, preset, model, "--add", str(math.ceil((rows - have) / rate)))
        stages = json.loads((pool / "run.json").read_text())["stages"].values()
        totals = [entry.get("totals", {}) for entry in stages]
        return Spent(
            rows=have,
            instructions=lines(pool / "instructions.jsonl"),
            requests=sum(int(t.get("requests", 0)) for t in totals),
            prompt_tokens=sum(int(t.get("prompt_tokens", 0)) for t in totals),
            completion_tokens=sum(int(t.get("completion_tokens", 0)) for t in totals),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1000, help="dataset rows per recipe")
    parser.add_argument("--model", default="gpt-4o-mini", help="whose list prices to use")
    args = parser.parse_args()
    prices = price_for(args.model, None, None)
    if prices is None:
        sys.exit(f"no known prices for {args.model}; pick one of selfinstruct.pricing.PRICES")
    spent = {preset: measure(preset, args.rows, args.model) for preset in RECIPES}
    print(
        f"per 1,000 dataset rows, at {args.model}'s prices (${prices.input} in,"
        f" ${prices.output} out per 1M tokens); fake server, seeds/seed_tasks.jsonl"
    )
    header = ("recipe", "rows", "instr", "requests", "prompt tok", "compl tok", "cost", "batch")
    print("{:<34}{:>6}{:>7}{:>10}{:>12}{:>11}{:>9}{:>9}".format(*header))
    for preset, s in spent.items():
        usd = cost(prices, s.prompt_tokens, s.completion_tokens) or 0.0
        k = s.per_thousand
        print(
            f"{preset + ' (' + RECIPES[preset] + ')':<34}{s.rows:>6}{s.instructions:>7}"
            f"{k(s.requests):>10.0f}{k(s.prompt_tokens):>12.0f}{k(s.completion_tokens):>11.0f}"
            f"{k(usd):>9.4f}{k(usd) * BATCH_DISCOUNT:>9.4f}"
        )
    a, b = spent["self-instruct"], spent["alpaca"]
    ratio = {
        "requests": a.per_thousand(a.requests) / b.per_thousand(b.requests),
        "prompt tokens": a.per_thousand(a.prompt_tokens) / b.per_thousand(b.prompt_tokens),
        "completion tokens": a.per_thousand(a.completion_tokens)
        / b.per_thousand(b.completion_tokens),
        "cost": a.per_thousand(cost(prices, a.prompt_tokens, a.completion_tokens) or 0.0)
        / b.per_thousand(cost(prices, b.prompt_tokens, b.completion_tokens) or 1.0),
    }
    print("self-instruct / alpaca: " + ", ".join(f"{k} {v:.1f}x" for k, v in ratio.items()))


if __name__ == "__main__":
    main()
