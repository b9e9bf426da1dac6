"""Start-up time of the commands people run most: `selfinstruct --help` and `status`.

    python -m bench.startup            # 15 runs each; median and best wall time

Each command runs in a fresh interpreter (as from a shell), next to two references measured
in the same run: a bare interpreter, and one that only imports typer (the floor of any Typer
CLI). `status` reads a small pool made here. Target: both under 0.3 s on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from selfinstruct.store.pool import Pool, load_seeds, store_seeds

CASES = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "python -c 'import typer'": [sys.executable, "-c", "import typer"],
    "selfinstruct --help": [sys.executable, "-m", "selfinstruct", "--help"],
    "selfinstruct status": [sys.executable, "-m", "selfinstruct", "status", "--pool", "pool"],
}


def make_pool(root: Path) -> None:
    seeds = root / "seeds.jsonl"
    task = {"instruction": "Name three rivers of Europe and the seas they flow into."}
    seeds.write_text(json.dumps({**task, "output": "The Rhine (North Sea), ..."}) + "\n")
    (root / "pool").mkdir()
    store_seeds(Pool(root / "pool"), load_seeds(seeds))


def timed(argv: list[str], cwd: Path, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_pool(root)
        print(f"{'command':<28} {'median s':>9} {'best s':>7}")
        for name, argv in CASES.items():
            times = timed(argv, root, args.runs)
            print(f"{name:<28} {statistics.median(times):>9.3f} {min(times):>7.3f}")


if __name__ == "__main__":
    main()
