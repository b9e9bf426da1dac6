"""Benchmark ROUGE-L dedup against the rouge-score reference on a Self-Instruct-like corpus.

Run `python bench/dedup.py --help`. Each size runs in a fresh subprocess, so its time covers the
whole process (interpreter start, import, reading, tokenizing, dedup) and its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FUNCTION_WORDS = (
    "the a of to and in for is that with on as be this or by from an it are your you given "
    "following write list generate create describe explain what how which sentence text word "
    "words story short about make find give me each into new one two three best most using why "
    "can should if some their its not all more"
)
OPENERS = [
    "Write a",
    "Generate a list of",
    "Given a",
    "Explain why",
    "Classify the following",
    "Create a",
    "Describe the",
    "What is the",
    "Give me",
    "Find the",
    "Summarize the",
    "Rewrite the following sentence",
    "Suggest a",
    "Tell me",
    "Come up with",
    "Identify the",
    "Translate the",
    "Make a list of",
    "How can I",
    "Compose a",
    "Edit the following",
    "Determine whether",
]
SYLLABLES = [c + v for c in "bcdfgklmnprstvz" for v in "aeiou"]


def vocabulary(rng: random.Random, size: int) -> list[str]:
    """Common English instruction words first, then pronounceable made-up words."""
    words = list(dict.fromkeys(FUNCTION_WORDS.split()))
    seen = set(words)
    while len(words) < size:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def paraphrase(rng: random.Random, text: str, draw: list[str]) -> str:
    """A near-paraphrase: a few word swaps, insertions, deletions and substitutions."""
    words = text.rstrip(".?").split()
    for _ in range(rng.choice((0, 1, 1, 2, 2, 3, 4, 6))):
        op, j = rng.randrange(4), rng.randrange(len(words))
        if op == 0 and len(words) > 1:
            k = min(j + 1, len(words) - 1)
            words[j], words[k] = words[k], words[j]
        elif op == 1:
            words.insert(j, rng.choice(draw))
        elif op == 2 and len(words) > 3:
            del words[j]
        else:
            words[j] = rng.choice(draw)
    return " ".join(words)


def corpus(n: int, seed: int = 0, vocab_size: int = 6000, dup_share: float = 0.15) -> list[str]:
    """Instructions: ~16 words (lognormal, 3-150), Zipfian words, openers, paraphrases."""
    rng = random.Random(seed)
    words = vocabulary(rng, vocab_size)
    cum = list(_cumulative([1 / (r + 1) for r in range(len(words))]))
    sigma = 0.6
    mu = math.log(16) - sigma * sigma / 2
    out: list[str] = []
    for _ in range(n):
        if out and rng.random() < dup_share:
            text = paraphrase(rng, rng.choice(out), rng.choices(words, cum_weights=cum, k=8))
        else:
            size = max(3, min(150, round(math.exp(rng.gauss(mu, sigma)))))
            head = rng.choice(OPENERS).split() if rng.random() < 0.4 else []
            text = " ".join(head + rng.choices(words, cum_weights=cum, k=max(1, size - len(head))))
        out.append(text[0].upper() + text[1:] + rng.choice(".?."))
    return out


def _cumulative(weights: list[float]) -> list[float]:
    """Running sums."""
    total, out = 0.0, []
    for w in weights:
        total += w
        out.append(total)
    return out


def reference_dedup(texts: list[str], threshold: float) -> tuple[list[int], float]:
    """The reference: RougeScorer against every kept text, keep when the max is <= threshold."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    start = time.perf_counter()
    kept: list[int] = []
    for i, text in enumerate(texts):
        scores = [scorer.score(text, texts[j])["rougeL"].fmeasure for j in kept]
        if max(scores, default=0.0) <= threshold:
            kept.append(i)
    return kept, time.perf_counter() - start


def child_dedup(path: str, threshold: float) -> dict[str, float]:
    """Child process: read instructions, dedup them, report kept count."""
    from selfinstruct.method.similarity import dedup

    texts = Path(path).read_text(encoding="utf-8").splitlines()
    return {"kept": sum(r.kept for r in dedup(texts, threshold))}


def child_queries(path: str, threshold: float, pool: int) -> dict[str, float]:
    """Child process: index `pool` texts, then treat the rest as stage 1 does its candidates.

    Stage 1 screens each reply (7 candidates) in one pass over the pool's overlaps, then asks
    each candidate's near_duplicate (scoring only the texts whose bound exceeds the threshold)
    and, for a novel one, its most_similar(10), and adds it with that list. The reference is
    the prefix filter one candidate at a time on a copy of the index (is_novel; best_match if
    rejected, most_similar(10) if novel). The first screen builds the overlap index; the
    first is_novel builds the prefix index.
    """
    from selfinstruct.method.similarity import RougeIndex

    texts = Path(path).read_text(encoding="utf-8").splitlines()
    index, single = RougeIndex(threshold), RougeIndex(threshold)
    index.extend(texts[:pool])
    single.extend(texts[:pool])
    start = time.perf_counter()
    index.most_similar(texts[0], 10)
    out: dict[str, float] = {"build_s": time.perf_counter() - start}
    single.is_novel(texts[0])
    spent = dict.fromkeys(("stage1", "single"), 0.0)
    rejected, candidates = 0, texts[pool:]
    for first in range(0, len(candidates), 7):
        reply = candidates[first : first + 7]
        start = time.perf_counter()
        screen = index.screen(reply)
        spent["stage1"] += time.perf_counter() - start
        for j, text in enumerate(reply):
            start = time.perf_counter()
            match = screen.near_duplicate(j)
            novel = match is None
            if novel:
                top = screen.most_similar(j, 10)
                index.add(text)
            step = time.perf_counter()
            spent["stage1"] += step - start
            alone = single.is_novel(text)
            assert novel is alone, "the two patterns disagree"
            if alone:
                assert single.most_similar(text, 10) == top, "the two patterns disagree"
                single.add(text)
            else:
                assert single.best_match(text) == match, "the two patterns disagree"
            spent["single"] += time.perf_counter() - step
            rejected += not novel
    queries = len(candidates)
    out.update(queries=queries, rejected=rejected)
    out.update(stage1_ms=spent["stage1"] / queries * 1e3, single_ms=spent["single"] / queries * 1e3)
    return out


def spawn(args: list[str]) -> tuple[dict[str, float], float, float]:
    """Run this script as a child; return its JSON report, wall seconds and peak RSS in MB."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"child failed with exit code {proc.returncode}")
    return json.loads(output), seconds, usage.ru_maxrss / 1024


def write(texts: list[str], folder: str, name: str) -> str:
    """Write one instruction per line; return the path."""
    path = os.path.join(folder, name)
    Path(path).write_text("\n".join(texts) + "\n", encoding="utf-8")
    return path


def main() -> None:
    """Parse options, run the reference slice, the sizes and the query timing; print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50000,1000000", help="comma-separated corpus sizes")
    parser.add_argument("--ref-size", type=int, default=1500, help="texts for the reference run")
    parser.add_argument("--pool", type=int, default=50000, help="pool size for query timing")
    parser.add_argument("--queries", type=int, default=2000, help="queries for query timing")
    parser.add_argument("--threshold", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, path = args.child
        if mode == "dedup":
            report = child_dedup(path, args.threshold)
        else:
            report = child_queries(path, args.threshold, args.pool)
        print(json.dumps(report))
        return
    run_all(args)


def run_all(args: argparse.Namespace) -> None:
    """The benchmark proper."""
    sizes = [int(s) for s in args.sizes.split(",") if s]
    texts = corpus(max([args.ref_size, args.pool + args.queries, *sizes]), args.seed)
    print(
        f"corpus: {len(texts)} texts, mean {sum(len(t.split()) for t in texts) / len(texts):.1f} "
        f"words, threshold {args.threshold}, seed {args.seed}"
    )
    kept_ref, ref_seconds = reference_dedup(texts[: args.ref_size], args.threshold)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from selfinstruct.method.similarity import dedup

    start = time.perf_counter()
    ours = [i for i, r in enumerate(dedup(texts[: args.ref_size], args.threshold)) if r.kept]
    our_seconds = time.perf_counter() - start
    verdict = "identical" if ours == kept_ref else "DIFFERENT"
    slice_note = f"kept {len(kept_ref)} vs {len(ours)}: {verdict}"
    print(f"reference slice of {args.ref_size}: rouge-score {ref_seconds:.1f} s, ours")
    print(f"  {our_seconds:.3f} s in-process, {slice_note}")
    rows = [("size", "seconds", "kept", "speed-up", "peak RSS MB")]
    with tempfile.TemporaryDirectory() as folder:
        for size in sizes:
            path = write(texts[:size], folder, f"{size}.txt")
            report, seconds, rss = spawn(
                ["--child", "dedup", path, "--threshold", str(args.threshold)]
            )
            ref = ref_seconds * (size / args.ref_size) ** 2
            rows.append(
                (
                    f"{size:,}",
                    f"{seconds:.2f}",
                    f"{int(report['kept']):,}",
                    f"{ref / seconds:,.0f}x",
                    f"{rss:.0f}",
                )
            )
        path = write(texts[: args.pool + args.queries], folder, "queries.txt")
        query = [
            "--child",
            "queries",
            path,
            "--pool",
            str(args.pool),
            "--threshold",
            str(args.threshold),
        ]
        report, _, _ = spawn(query)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))
    print("speed-up: reference time extrapolated quadratically from the slice to each size;")
    print("seconds: whole child process (start, import, read, tokenize, dedup), one core.")
    queries, rejected = int(report["queries"]), int(report["rejected"])
    print(
        f"stage 1 at a {args.pool:,} pool ({queries} candidates, {rejected} rejected): "
        f"screened 7 at a time, then near_duplicate, and most_similar(10) and add if novel: "
        f"{report['stage1_ms']:.3f} ms a candidate (one at a time with the prefix filter: "
        f"is_novel, then best_match or most_similar(10) and add: {report['single_ms']:.3f} "
        f"ms); overlap index built once in {report['build_s']:.2f} s"
    )
    if verdict != "identical":
        raise SystemExit("kept sets differ from the reference")


if __name__ == "__main__":
    main()
