"""The review table of a fake run before and after `curate`, and the judge's token cost.

    python -m bench.judge              # 300 instructions, review samples of 200
    python -m bench.judge -n 100 --sample 50

(from the repository's root: it imports the test helpers as `tests.*`)

Runs `selfinstruct run --curate` (a subprocess, as a user would) against the fake server,
whose toy model here is sloppy in one way the filter's default rules let through: about one
output in five starts by repeating its instruction. The fake judge (tests/fakejudge.py) rates
such an output 2 and a clean one 4 or 5. Then `filter` writes the dataset before curation,
`filter --min-score 4` the one after, and `review BEFORE --compare AFTER` prints the paper's
table for both. Last, what curate cost per 1,000 instances: requests, tokens (the fake
server's estimate, 1.3 tokens a word) and dollars at gpt-4o-mini's list prices.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.fakecorpus import target_task
from tests.fakeserver import FakeOpenAI, default_reply, prompt_text

SEEDS = Path(__file__).resolve().parents[1] / "seeds" / "seed_tasks.jsonl"
OUTPUT = re.compile(r"^Output: (.+)$", re.MULTILINE)
SLOPPY = 5  # one output in this many repeats its instruction


def sloppy(body: dict[str, Any]) -> str:
    """The toy model, but some stage 3 outputs open with their task's instruction."""
    text = default_reply(body)
    prompt = prompt_text(body)
    if "Example 1" not in prompt or "<response>" in prompt:
        return text
    task = target_task(prompt)

    def repeat(m: re.Match[str]) -> str:
        digest = hashlib.sha256(m[1].encode()).digest()[0]
        return f"Output: {task} {m[1]}" if digest % SLOPPY == 0 else m[0]

    return OUTPUT.sub(repeat, text)


def selfinstruct(server: FakeOpenAI, tmp: str, *args: str) -> str:
    env = {**os.environ, "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": server.base_url}
    argv = [sys.executable, "-m", "selfinstruct", *args]
    done = subprocess.run(argv, env=env, cwd=tmp, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"selfinstruct {args[0]} exited {done.returncode}: {done.stderr}")
    return done.stdout


def count(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=300, help="machine instructions")
    parser.add_argument("--sample", type=int, default=200, help="instances reviewed per dataset")
    args = parser.parse_args()
    with FakeOpenAI(reply=sloppy) as server, tempfile.TemporaryDirectory() as tmp:
        seeds = str(SEEDS.resolve())
        selfinstruct(server, tmp, "run", "--seeds", seeds, "-n", str(args.n), "--curate", "--quiet")
        pool = Path(tmp) / "data"
        shutil.copy(pool / "dataset.jsonl", Path(tmp) / "before.jsonl")
        selfinstruct(server, tmp, "filter", "--min-score", "4")
        shutil.copy(pool / "dataset.jsonl", Path(tmp) / "after.jsonl")
        before, after = (count(Path(tmp) / f) for f in ("before.jsonl", "after.jsonl"))
        print(f"{args.n} instructions; dataset {before} instances before curate, {after} after\n")
        review = ["review", "before.jsonl", "--compare", "after.jsonl", "-n", str(args.sample)]
        table = selfinstruct(server, tmp, *review, "--no-progress")
        print(table.split("\n\nreview:")[0] + "\n")
        cost(pool)


def cost(pool: Path) -> None:
    manifest = json.loads((pool / "run.json").read_text())
    totals = manifest["stages"]["curate"]["totals"]
    scored = count(pool / "curation.jsonl")
    per = 1000 / scored
    print(f"curate: {scored} instances scored with {totals['requests']} requests")
    print("per 1,000 instances:")
    print(f"  requests           {totals['requests'] * per:.0f}")
    print(f"  prompt tokens      {totals['prompt_tokens'] * per:.0f}")
    print(f"  completion tokens  {totals['completion_tokens'] * per:.0f}")
    print(f"  cost (gpt-4o-mini) ${totals['cost'] * per:.4f}")


if __name__ == "__main__":
    main()
