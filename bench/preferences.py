"""The preference-pair yield of `preferences` on a fake run: pairs kept per prompt, ties and
pairs below the margin, at margins 1 to 3.

    python -m bench.preferences            # 100 instructions
    python -m bench.preferences -n 300

(from the repository's root: it imports the test helpers as `tests.*`)

Runs `selfinstruct run` (a subprocess, as a user would) against the fake server for the
dataset, then `selfinstruct preferences` with 4 candidates at margin 1, 2 and 3 (the later
margins from the request cache). The fake generator (tests/fakeprefs.py) writes good, empty,
instruction-repeating and chat-wrapped candidates; the fake judge (tests/fakejudge.py) scores
them 4-5, 1, 2 and 1, and never scores one in eleven prompts' first candidate.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from tests.fakeserver import FakeOpenAI

SEEDS = Path(__file__).resolve().parents[1] / "seeds" / "seed_tasks.jsonl"


def selfinstruct(server: FakeOpenAI, tmp: str, *args: str) -> str:
    env = {**os.environ, "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": server.base_url}
    argv = [sys.executable, "-m", "selfinstruct", *args]
    done = subprocess.run(argv, env=env, cwd=tmp, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"selfinstruct {args[0]} exited {done.returncode}: {done.stderr}")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=100, help="machine instructions")
    args = parser.parse_args()
    with FakeOpenAI() as server, tempfile.TemporaryDirectory() as tmp:
        selfinstruct(
            server, tmp, "run", "--seeds", str(SEEDS), "-n", str(args.n), "--seed", "0", "--quiet"
        )
        pool = Path(tmp) / "data"
        rows = [json.loads(line) for line in (pool / "dataset.jsonl").open(encoding="utf-8")]
        instructions = len({r["instruction"] for r in rows})
        print(
            f"{args.n} machine instructions; dataset {len(rows)} rows, {instructions} instructions"
        )
        print("margin  prompts  pairs  yield  ties  below margin  unscored  unscored answers")
        for margin in (1, 2, 3):
            selfinstruct(server, tmp, "preferences", "--no-progress", "--margin", str(margin))
            records = [
                r
                for line in (pool / "preferences.jsonl").open(encoding="utf-8")
                if (r := json.loads(line))["margin"] == margin
            ]
            got = Counter(r["outcome"] for r in records)
            blank = sum(c["score"] is None for r in records for c in r["candidates"])
            share = got["pair"] / len(records) if records else 0.0
            print(
                f"{margin:>6}  {len(records):>7}  {got['pair']:>5}  {share:>5.0%}  {got['tie']:>4}"
                f"  {got['margin']:>12}  {got['unscored']:>8}  {blank:>16}"
            )


if __name__ == "__main__":
    main()
