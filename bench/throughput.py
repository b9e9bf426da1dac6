"""Pipeline throughput against the fake server: requests per second vs ideal, CPU per request.

    python -m bench.throughput                       # concurrency 8, 32, 128 at 200 ms latency
    python -m bench.throughput --pool-size 50000     # CPU per request at a 50K-instruction pool
    python -m bench.throughput --server threaded     # against tests/fakeserver.py itself
    python -m bench.throughput --timeline            # also CPU per request every 2.5 s of a run

(from the repository's root: the benchmarks import the test helpers as `tests.*`)

The fake server (bench/asyncserver.py: the test server's replies behind one event loop) runs
in its own process, so the CPU measured here is the pipeline's alone: this process and its
HTTP worker process (selfinstruct/llm/transport.py) when it has one. Ideal = concurrency /
latency; "bare client" is the openai client alone sending requests as fast as the same
server and concurrency allow, measured in the same run: the ceiling of this machine, and
with its CPU per request ("bare CPU") the floor under the pipeline's.
Two views of each pipeline run:

- whole run: requests sent / wall time of `run_pipeline` (start-up, loading the pool and the
  index, the ramp-up, the tail and stage 4 included); CPU per request = (CPU of the run - CPU
  of stage 4, run once more on its own) / requests;
- steady state: the middle 80% of the requests by the server's arrival times (the first and
  last 10% are the ramp-up and the tail): their rate, and the pipeline's CPU (sampled every
  100 ms) over the same span / those requests. This is what each request costs, and how full
  the concurrency budget is kept, while the pipeline streams.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import random
import tempfile
import threading
import time
from bisect import bisect_left
from pathlib import Path
from typing import IO, Any

import openai

from bench import asyncserver
from selfinstruct.config import (
    ClassifySettings,
    FilterSettings,
    GenerateSettings,
    InstancesSettings,
    Settings,
)
from selfinstruct.models import stable_id
from selfinstruct.pipeline.run import RunJob, run_pipeline
from selfinstruct.stages.filter import FilterJob, filter_pool
from selfinstruct.store.pool import Pool
from tests.fakecorpus import make_instruction
from tests.fakeserver import FakeOpenAI

SEEDS = Path(__file__).resolve().parents[1] / "seeds" / "seed_tasks.jsonl"


def serve(latency: float, ready: mp.Queue, commands: mp.Queue) -> None:  # type: ignore[type-arg]
    """The fake server; on "arrivals", report the arrival times since the last report."""
    server = FakeOpenAI(latency=latency).start()
    ready.put(server.base_url)
    seen = 0
    while commands.get() == "arrivals":
        requests = server.requests[seen:]
        seen += len(requests)
        ready.put(sorted(r.arrived for r in requests))
    server.stop()


def pipeline_cpu(server: int) -> float:
    """CPU of this process and its live children other than the server (the HTTP worker)."""
    own = time.process_time()
    children = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()
    return own + sum(cpu_seconds(int(pid)) for pid in children if int(pid) != server)


class CpuSampler:
    """(monotonic time, pipeline CPU time) every `every` seconds, from a thread whose own CPU
    (reading /proc: ~0.2 ms a request at concurrency 8) is left out of the samples."""

    def __init__(self, server: int, every: float = 0.1) -> None:
        self.server = server
        self.samples: list[tuple[float, float]] = []
        self.own = 0.0  # CPU of the sampling thread itself
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)
        self._thread.start()

    def _run(self, every: float) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(FileNotFoundError):  # a child exited while being read
                cpu = pipeline_cpu(self.server)
                self.own = time.thread_time()
                self.samples.append((time.monotonic(), cpu - self.own))
            self._stop.wait(every)
        self.own = time.thread_time()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def cpu_at(self, t: float) -> float:
        """CPU time at monotonic time `t`, interpolated between samples."""
        times = [s[0] for s in self.samples]
        i = min(max(bisect_left(times, t), 1), len(times) - 1)
        (t0, c0), (t1, c1) = self.samples[i - 1], self.samples[i]
        return c0 + (c1 - c0) * (t - t0) / (t1 - t0) if t1 > t0 else c1


def bare_client(base_url: str, concurrency: int, seconds: float) -> tuple[float, float]:
    """Requests per second of the openai client alone, `concurrency` requests in flight, and
    its CPU per request (ms): the floor under the pipeline's own figure."""

    async def run() -> tuple[float, float]:
        client = openai.AsyncOpenAI(
            api_key="sk-test",
            base_url=base_url,
            max_retries=0,
            http_client=openai.DefaultAioHttpClient(),
        )
        ask = "Task: say hi\nIs it classification?"
        body = {
            "model": "gpt-4o-mini",
            "max_tokens": 8,
            "messages": [{"role": "user", "content": ask}],
        }
        done, end = 0, time.monotonic() + seconds

        async def loop() -> None:
            nonlocal done
            while time.monotonic() < end:
                await client.post("/chat/completions", body=body, cast_to=dict)
                done += time.monotonic() <= end  # replies within the window

        await asyncio.gather(*(loop() for _ in range(concurrency)))  # warm the connections
        done, end, cpu = 0, time.monotonic() + seconds, time.process_time()
        await asyncio.gather(*(loop() for _ in range(concurrency)))
        cpu = time.process_time() - cpu
        await client.close()
        return done / seconds, cpu / max(done, 1) * 1000

    return asyncio.run(run())


def job(root: Path, base_url: str, concurrency: int, target: int, worker: str) -> RunJob:
    llm = Settings.model_validate(
        {
            "base_url": base_url,
            "api_key": "sk-test",
            "concurrency": concurrency,
            "timeout": 30,
            "http_worker": worker,
        }
    )
    return RunJob(
        pool=Pool(root),
        seeds=SEEDS,
        target=target,
        add=None,
        llm=llm,
        generate=GenerateSettings(),
        classify=ClassifySettings(),
        instances=InstancesSettings(),
        filter=FilterSettings(),
        prompts=None,
        seed=1,
        progress=False,
    )


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
            task = {"id": stable_id("i", text), "instruction": text, "request": "x"}
            one = [{"input": "", "output": "ok"}]
            line(ins, task, round=0)
            line(cls, task, is_classification=False, answer="No")
            kind = {"prompt_kind": "input_first", "raw": "", "finish_reason": "stop"}
            line(out, task, is_classification=False, **kind, instances=one)


def line(file: IO[str], record: dict[str, Any], **more: Any) -> None:
    file.write(json.dumps({**record, **more}) + "\n")


def children_cpu() -> float:
    """CPU of the children that have exited and been waited for (the HTTP worker)."""
    t = os.times()
    return t.children_user + t.children_system


def cpu_seconds(pid: int) -> float:
    """User + system CPU of another process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    base_url: str,
    concurrency: int,
    latency: float,
    seconds: float,
    pool_size: int,
    server: mp.Process,
    ready: mp.Queue,  # type: ignore[type-arg]
    commands: mp.Queue,  # type: ignore[type-arg]
    show_timeline: bool = False,
    worker: str = "auto",
) -> dict[str, float]:
    root = Path(tempfile.mkdtemp()) / "pool"
    if pool_size:
        prefill(root, pool_size)
    # about 2.2 requests per new instruction (generate shares, classify, instances)
    new = max(20, int(concurrency / latency * seconds / 2.2))
    commands.put("arrivals")
    ready.get(timeout=30)  # forget the requests of earlier runs
    server_cpu = cpu_seconds(server.pid or 0)
    sampler = CpuSampler(server.pid or 0)
    start_cpu = time.process_time() + children_cpu()
    report = run_pipeline(job(root, base_url, concurrency, pool_size + new, worker))
    sampler.stop()
    run_cpu = time.process_time() + children_cpu() - start_cpu - sampler.own
    server_cpu = cpu_seconds(server.pid or 0) - server_cpu
    commands.put("arrivals")
    arrivals: list[float] = ready.get(timeout=30)
    filter_start = time.process_time()
    filter_pool(FilterJob(Pool(root), FilterSettings()))  # stage 4 once more, to subtract it
    filter_cpu = time.process_time() - filter_start
    sent = sum(u.requests for u in report.usage.values())
    if show_timeline:
        timeline(arrivals, sampler)
    first, last = arrivals[len(arrivals) // 10], arrivals[len(arrivals) * 9 // 10]
    middle = len(arrivals) * 9 // 10 - len(arrivals) // 10
    return {
        "requests": sent,
        "seconds": report.elapsed,
        "rps": sent / report.elapsed,
        "ideal": concurrency / latency,
        "cpu_ms": (run_cpu - filter_cpu) / sent * 1000,
        "steady_rps": middle / (last - first),
        "steady_cpu_ms": (sampler.cpu_at(last) - sampler.cpu_at(first)) / middle * 1000,
        "server_load": server_cpu / report.elapsed,
    }


def timeline(arrivals: list[float], sampler: CpuSampler, step: float = 2.5) -> None:
    """CPU per request in each `step` seconds of the run, by the server's arrival times."""
    for start in [arrivals[0] + i * step for i in range(int((arrivals[-1] - arrivals[0]) / step))]:
        count = sum(start <= a < start + step for a in arrivals)
        cpu = sampler.cpu_at(start + step) - sampler.cpu_at(start)
        when = f"{start - arrivals[0]:5.1f}s"
        print(f"    {when}  {count:4d} requests  {cpu / max(count, 1) * 1000:.2f} ms CPU each")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", default="8,32,128")
    parser.add_argument("--seconds", type=float, default=10.0, help="target run length at ideal")
    parser.add_argument("--pool-size", type=int, default=0)
    parser.add_argument("--server", choices=("async", "threaded"), default="async")
    parser.add_argument("--timeline", action="store_true", help="CPU per request every 2.5 s")
    parser.add_argument(
        "--http-worker",
        default="auto",
        help="auto, on or off, or a list (on,off) to run each level once with each, interleaved",
    )
    args = parser.parse_args()
    ready: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    commands: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    target = asyncserver.serve if args.server == "async" else serve
    server = mp.Process(target=target, args=(args.latency, ready, commands), daemon=True)
    server.start()
    base_url = ready.get(timeout=30)
    os.environ.pop("OPENAI_API_KEY", None)
    print(f"latency {args.latency * 1000:.0f} ms, pool {args.pool_size}, server pid {server.pid}")
    print("run = the whole run; steady = its middle 80% of requests; bare = the openai client")
    run = ("ideal r/s", "bare %", "bare CPU", "run r/s", "run %", "run CPU ms")
    columns = (
        "conc",
        "worker",
        *run,
        "steady r/s",
        "steady %",
        "of bare",
        "steady CPU",
        "server CPU",
    )
    print(" ".join(f"{c:>10}" for c in columns))
    levels = [
        (int(c), worker)
        for c in args.concurrency.split(",")
        for worker in args.http_worker.split(",")
    ]
    for c, worker in levels:
        ideal = c / args.latency
        bare, bare_cpu = bare_client(base_url, c, min(args.seconds, 5.0))
        r = measure(
            base_url,
            c,
            args.latency,
            args.seconds,
            args.pool_size,
            server,
            ready,
            commands,
            show_timeline=args.timeline,
            worker=worker,
        )
        cells = (
            c,
            worker,
            f"{ideal:.0f}",
            f"{100 * bare / ideal:.1f}%",
            f"{bare_cpu:.2f}",
            f"{r['rps']:.1f}",
            f"{100 * r['rps'] / ideal:.1f}%",
            f"{r['cpu_ms']:.2f}",
            f"{r['steady_rps']:.1f}",
            f"{100 * r['steady_rps'] / ideal:.1f}%",
            f"{100 * r['steady_rps'] / bare:.1f}%",
            f"{r['steady_cpu_ms']:.2f}",
            f"{100 * r['server_load']:.0f}%",
        )
        print(" ".join(f"{cell:>10}" for cell in cells), flush=True)
    commands.put("stop")
    server.join(timeout=5)


if __name__ == "__main__":
    main()
