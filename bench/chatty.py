"""How clean the dataset is when the model wraps every reply as a chat model does.

    python -m bench.chatty                 # 300 instructions, chat API, the project's seeds
    python -m bench.chatty -n 100 --seeds my_seeds.jsonl

(from the repository's root: it imports the test helpers as `tests.*`)

Runs `selfinstruct run` (a subprocess, as a user would) against the fake server with the
`Chatty` reply of tests/chatty.py: preambles, fences, markdown labels and headings, numbered
examples, quoted fields, other field names, label-only instances, closing remarks. Prints the
dataset's records that still carry wrapping (by the tests' own check, not the filter's), the
records that are not exactly an instance the server meant, the replies that held instances
but yielded none, the classification and empty-input shares, and the filter's counts.
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
from typing import Any

from tests.chatty import Chatty, residue
from tests.fakeserver import FakeOpenAI

SEEDS = Path(__file__).resolve().parents[1] / "seeds" / "seed_tasks.jsonl"


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=300, help="machine instructions")
    parser.add_argument("--seeds", type=Path, default=SEEDS)
    args = parser.parse_args()
    chatty = Chatty()
    with FakeOpenAI(reply=chatty) as server, tempfile.TemporaryDirectory() as tmp:
        pool = Path(tmp) / "pool"
        env = {**os.environ, "OPENAI_API_KEY": "sk-test"}
        argv = ["run", "--seeds", str(args.seeds.resolve()), "-n", str(args.n), "--pool", str(pool)]
        argv += ["--base-url", server.base_url, "--api", "chat", "--quiet"]
        done = subprocess.run([sys.executable, "-m", "selfinstruct", *argv], env=env, cwd=tmp)
        if done.returncode != 0:
            sys.exit(f"selfinstruct run exited {done.returncode}")
        report(chatty, pool)


def report(chatty: Chatty, pool: Path) -> None:
    dataset = records(pool / "dataset.jsonl")
    sets = records(pool / "instances.jsonl")
    rules = Counter(r["rule"] for r in records(pool / "filter_rejects.jsonl"))
    n = max(1, len(dataset))
    meant = sum((r["input"], r["output"]) in chatty.payloads for r in dataset)
    print(f"dataset records                         {len(dataset)}")
    print(f"records with wrapping left              {sum(bool(residue(r)) for r in dataset)}")
    print(f"records not exactly an instance meant   {len(dataset) - meant}")
    print(f"replies that held instances, yielded 0  {sum(not s['instances'] for s in sets)}")
    print(f"  of replies                            {len(sets)}")
    classification = sum(bool(r["is_classification"]) for r in dataset)
    print(f"classification share                    {classification / n:.1%}")
    print(f"empty-input share                       {sum(not r['input'] for r in dataset) / n:.1%}")
    print("filter rules")
    for rule, count in rules.most_common():
        print(f"  {rule:<36}  {count}")


if __name__ == "__main__":
    main()
