"""Time of `selfinstruct stats` on a 50,000-instruction pool, and of its diversity figures alone.

    python -m bench.diversity               # 50,000 instructions, 2 instances each
    python -m bench.diversity --records 5000

The pool is made here: instructions of 8-25 words and outputs of 20-120 words drawn from a
Zipf-like vocabulary of 30,000 words, a classification and an instance set per instruction,
and a dataset.jsonl of every instance (so stats reads a dataset as large as the pool's). The
command runs once in a fresh interpreter (as from a shell); the diversity figures are then
timed in this process on the same texts, with their token counts.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from selfinstruct.outputs.diversity import diversity_figures

VOCAB = 30_000


def words(rng: random.Random, table: list[str], weights: list[float], lo: int, hi: int) -> str:
    return " ".join(rng.choices(table, weights, k=rng.randint(lo, hi))).capitalize() + "."


def make_pool(root: Path, records: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    table = [f"w{i}x" for i in range(VOCAB)]
    weights = [1 / (rank + 1) for rank in range(VOCAB)]
    root.mkdir()
    seed_task = {"id": "s0", "instruction": "Name a river.", "instances": [{"output": "Rhine"}]}
    (root / "seeds.jsonl").write_text(json.dumps(seed_task) + "\n")
    files = {
        name: open(root / name, "w")  # noqa: SIM115 - four files written side by side
        for name in (
            "instructions.jsonl",
            "classifications.jsonl",
            "instances.jsonl",
            "dataset.jsonl",
        )
    }
    instructions, outputs = [], []
    for i in range(records):
        rid, text = f"i-{i:016x}", words(rng, table, weights, 8, 25)
        pairs = [("", words(rng, table, weights, 20, 120)) for _ in range(2)]
        instructions.append(text)
        outputs += [out for _, out in pairs]
        common = {"id": rid, "instruction": text}
        put(files["instructions.jsonl"], {**common, "request": "k", "round": i})
        put(
            files["classifications.jsonl"],
            {**common, "is_classification": False, "answer": "No", "request": "k"},
        )
        instances = [{"input": given, "output": out} for given, out in pairs]
        put(
            files["instances.jsonl"],
            {
                **common,
                "is_classification": False,
                "prompt_kind": "input_first",
                "instances": instances,
                "raw": "",
                "finish_reason": "stop",
                "request": "k",
            },
        )
        for k, inst in enumerate(instances):
            put(files["dataset.jsonl"], {"id": f"{rid}-{k}", **common, **inst})
    for fp in files.values():
        fp.close()
    return instructions, outputs


def put(fp: object, record: dict[str, object]) -> None:
    fp.write(json.dumps(record) + "\n")  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=50_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "pool"
        instructions, outputs = make_pool(root, args.records)
        command = [sys.executable, "-m", "selfinstruct", "stats", "--pool", str(root)]
        started = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
        whole = time.perf_counter() - started
        print(f"selfinstruct stats, {args.records} instructions: {whole:.2f} s")
        for name, texts in (("instructions", instructions), ("outputs", outputs)):
            started = time.perf_counter()
            result = diversity_figures(texts)
            took = time.perf_counter() - started
            print(
                f"  diversity of {len(texts)} {name} ({result.tokens} tokens): {took:.2f} s "
                f"(MTLD {result.mtld:.1f}, distinct-1 {result.distinct_1:.3f}, "
                f"distinct-2 {result.distinct_2:.3f}, ROUGE-L {result.rouge_l:.3f})"
            )


if __name__ == "__main__":
    main()
