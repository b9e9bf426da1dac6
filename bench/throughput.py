"""Pipeline throughput against the fake server: requests per second vs ideal, CPU per request.

    python bench/throughput.py                       # concurrency 8, 32, 128 at 200 ms latency
    python bench/throughput.py --pool-size 50000     # CPU per request at a 50K-instruction pool

The fake server runs in its own process, so the CPU measured here is the pipeline's alone.
Ideal = concurrency / latency. CPU per request = (CPU of the run - CPU of a run that finds
nothing to do, i.e. start-up and loading the pool - CPU of stage 4, run once more on its own)
/ requests sent: what each request costs while the pipeline is streaming.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fakeserver import FakeOpenAI, make_instruction  # noqa: E402
from selfinstruct.config import (  # noqa: E402
    ClassifySettings,
    FilterSettings,
    GenerateSettings,
    InstancesSettings,
    Settings,
)
from selfinstruct.models import stable_id  # noqa: E402
from selfinstruct.pool import Pool  # noqa: E402
from selfinstruct.stages.filter import FilterJob, filter_pool  # noqa: E402
from selfinstruct.stages.run import RunJob, run_pipeline  # noqa: E402

SEEDS = Path(__file__).resolve().parents[1] / "seeds" / "seed_tasks.jsonl"


def serve(latency: float, ready: mp.Queue, stop: mp.Event) -> None:  # type: ignore[type-arg]
    server = FakeOpenAI(latency=latency).start()
    ready.put(server.base_url)
    stop.wait()
    times = sorted(r.arrived for r in server.requests if hasattr(r, "arrived"))
    ready.put((len(server.requests), times))
    server.stop()


def job(root: Path, base_url: str, concurrency: int, target: int) -> RunJob:
    llm = Settings.model_validate(
        {"base_url": base_url, "api_key": "sk-test", "concurrency": concurrency, "timeout": 30}
    )
    return RunJob(
        pool=Pool(root), seeds=SEEDS, target=target, add=None, llm=llm,
        generate=GenerateSettings(), classify=ClassifySettings(), instances=InstancesSettings(),
        filter=FilterSettings(), prompts=None, seed=1, progress=False,
    )  # fmt: skip


def prefill(root: Path, size: int) -> None:
    """A pool that already holds `size` finished instructions (classified, with instances)."""
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    texts = list(dict.fromkeys(make_instruction(rng, 0.0) for _ in range(size * 2)))[:size]
    with (
        open(root / "instructions.jsonl", "w") as ins,
        open(root / "classifications.jsonl", "w") as cls,
        open(root / "instances.jsonl", "w") as out,
    ):
        for text in texts:
            rid = stable_id("i", text)
            ins.write(
                json.dumps({"id": rid, "instruction": text, "request": "x", "round": 0}) + "\n"
            )
            cls.write(json.dumps({"id": rid, "instruction": text, "is_classification": False,
                                  "answer": "No", "request": "x"}) + "\n")  # fmt: skip
            one = [{"input": "", "output": "ok"}]
            out.write(json.dumps({"id": rid, "instruction": text, "is_classification": False,
                                  "prompt_kind": "input_first", "raw": "", "request": "x",
                                  "finish_reason": "stop", "instances": one}) + "\n")  # fmt: skip


def cpu_seconds(pid: int) -> float:
    """User + system CPU of another process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    base_url: str, concurrency: int, latency: float, seconds: float, pool_size: int, server: int
) -> dict[str, float]:
    root = Path(tempfile.mkdtemp()) / "pool"
    if pool_size:
        prefill(root, pool_size)
    # about 2.2 requests per new instruction (generate shares, classify, instances)
    new = max(20, int(concurrency / latency * seconds / 2.2))
    start_cpu, server_cpu = time.process_time(), cpu_seconds(server)
    report = run_pipeline(job(root, base_url, concurrency, pool_size + new))
    wall = report.elapsed
    run_cpu = time.process_time() - start_cpu
    server_cpu = cpu_seconds(server) - server_cpu
    idle_start = time.process_time()
    run_pipeline(job(root, base_url, concurrency, pool_size + new))  # nothing to do: start-up only
    idle_cpu = time.process_time() - idle_start
    filter_start = time.process_time()
    filter_pool(FilterJob(Pool(root), FilterSettings()))  # stage 4 once more, to subtract it
    filter_cpu = time.process_time() - filter_start
    sent = sum(u.requests for u in report.usage.values())
    return {
        "concurrency": concurrency, "pool": pool_size, "requests": sent, "seconds": wall,
        "rps": sent / wall, "ideal": concurrency / latency,
        "cpu_ms": (run_cpu - idle_cpu - filter_cpu) / sent * 1000, "startup_cpu_s": idle_cpu,
        "filter_cpu_s": filter_cpu,
        "server_load": server_cpu / wall,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", default="8,32,128")
    parser.add_argument("--seconds", type=float, default=10.0, help="target run length at ideal")
    parser.add_argument("--pool-size", type=int, default=0)
    args = parser.parse_args()
    ready: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    stop = mp.Event()
    server = mp.Process(target=serve, args=(args.latency, ready, stop), daemon=True)
    server.start()
    base_url = ready.get(timeout=30)
    os.environ.pop("OPENAI_API_KEY", None)
    print(f"latency {args.latency * 1000:.0f} ms, pool {args.pool_size}, server pid {server.pid}")
    columns = ("conc", "requests", "seconds", "req/s", "ideal", "% ideal", "CPU ms/req", "server")
    print(" ".join(f"{c:>10}" for c in columns))
    for c in (int(x) for x in args.concurrency.split(",")):
        r = measure(base_url, c, args.latency, args.seconds, args.pool_size, server.pid or 0)
        cells = (c, r["requests"], f"{r['seconds']:.2f}", f"{r['rps']:.1f}", f"{r['ideal']:.0f}",
                 f"{100 * r['rps'] / r['ideal']:.1f}%", f"{r['cpu_ms']:.2f}",
                 f"{100 * r['server_load']:.0f}% CPU")  # fmt: skip
        print(" ".join(f"{cell:>10}" for cell in cells))
    stop.set()
    server.join(timeout=5)


if __name__ == "__main__":
    main()
