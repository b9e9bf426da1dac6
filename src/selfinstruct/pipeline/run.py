"""`selfinstruct run`: the four stages to the target in one process, overlapping where they can.

Stage 1 feeds each accepted instruction to a classify queue, and each classified one to an
instances queue, so all stages share the concurrency budget while generation goes on; the
novelty decision stays serial in stage 1. Pending work left by earlier runs is queued first.
Stage 4 runs at the end, when everything up to the target has instances.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from selfinstruct.clock import now
from selfinstruct.config import (
    ClassifySettings,
    FilterSettings,
    GenerateSettings,
    InstancesSettings,
    Settings,
)
from selfinstruct.errors import BudgetExhausted, ConfigError, Interrupted
from selfinstruct.llm import transport
from selfinstruct.llm.batchfiles import open_keys
from selfinstruct.llm.client import LLM
from selfinstruct.llm.flow import Flow
from selfinstruct.models import Classification, MachineInstruction
from selfinstruct.pipeline.workers import generator, workers
from selfinstruct.progress import Progress, progress
from selfinstruct.stages.alpaca import settle_preset
from selfinstruct.stages.base import STOP, leave_to_batches, run_async
from selfinstruct.stages.curate import CurateJob, CurateReport, judge_items, pool_items
from selfinstruct.stages.filter import FilterJob, FilterReport, write_dataset
from selfinstruct.stages.generate import GenerateReport
from selfinstruct.stages.yields import classify_warnings, instances_warnings
from selfinstruct.store import manifest
from selfinstruct.store.cache import RequestCache
from selfinstruct.store.pool import JsonlAppender, Pool, Work, bulk_load

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class RunJob:
    pool: Pool
    seeds: Path | None
    target: int | None
    add: int | None
    llm: Settings
    generate: GenerateSettings
    classify: ClassifySettings
    instances: InstancesSettings
    filter: FilterSettings
    prompts: Path | None
    seed: int
    progress: bool = True
    curate: CurateJob | None = None  # `run --curate`: the judge scores before stage 4


@dataclass
class RunReport:
    target: int
    generate: GenerateReport
    counts: dict[str, int] = field(default_factory=dict)
    filter: FilterReport | None = None
    stopped: str | None = None
    incomplete: str | None = None  # "1 unclassified, 1 without instances": failed for good
    nothing_to_do: bool = False
    elapsed: float = 0.0
    usage: dict[str, Any] = field(default_factory=dict)
    concurrency: dict[str, int] = field(default_factory=dict)
    interrupted: Interrupted | None = None  # by a signal: the CLI shows what was done, then exits
    spent: dict[str, dict[str, Any]] = field(default_factory=dict)  # the pool's, all runs
    warnings: list[str] = field(default_factory=list)  # stages.yields: a yield looks wrong
    preset: str | None = None  # the recipe this run followed (stages/alpaca.py)
    curate: CurateReport | None = None


def resolve_target(pool: Pool, target: int | None, add: int | None, have: int) -> int:
    """--num-instructions sets the target, --add grows it; both persist in run.json for cron."""
    stored = manifest.load(pool).get("run", {}).get("target")
    base = target if target is not None else stored
    if base is None and add is None:
        raise ConfigError(f"the pool {pool.root} has no target yet; pass --num-instructions N")
    return (base if base is not None else have) + (add or 0)


class Pipeline:
    """Three stage workers over shared queues, one cache, one failures file, one Flow."""

    def __init__(
        self, job: RunJob, cache: RequestCache, failures: JsonlAppender, work: Work
    ) -> None:
        self.job, pool = job, job.pool
        self.flow = Flow(
            job.llm.concurrency, job.llm.max_consecutive_failures, job.llm.breaker_seconds
        )
        self.clients = transport.connect(job.llm)
        llms = {
            s: LLM(job.llm, cache, failures, s, self.flow, self.clients)
            for s in ("generate", "classify", "instances")
        }
        self.llms = llms
        self.gen = generator(job, llms["generate"], machine=work.machine)
        self.cls, self.ins = workers(job, llms)
        self.to_classify: asyncio.Queue[MachineInstruction | None] = asyncio.Queue()
        self.to_instances: asyncio.Queue[Classification | None] = asyncio.Queue()
        self.stopped: str | None = None
        reserved = open_keys(pool)  # read once: batches.jsonl and every open batch's file
        for rec in leave_to_batches(reserved, work.unclassified, self.cls.build, self.cls.report):
            self.to_classify.put_nowait(rec)
        for c in leave_to_batches(
            reserved, work.without_instances, self.ins.build, self.ins.report
        ):
            self.to_instances.put_nowait(c)
        # The bar counts steps, three an instruction (an unparsed classification gets no
        # instances: its third step is done with the second), so it ends when stage 3 does.
        todo = 2 * len(work.unclassified) + len(work.without_instances)
        self.steps = 3 * len(work.machine) - todo
        self.done = {"generated": 0, "classified": 0, "with instances": 0}

    def step(self, bar: Progress, stage: str, steps: int = 1) -> None:
        self.done[stage] += 1
        bar.set_postfix_str(", ".join(f"+{n} {what}" for what, n in self.done.items()), False)
        bar.update(steps)

    async def run(self, target: int, bar: Progress) -> GenerateReport:
        def accepted(record: MachineInstruction) -> None:
            if self.gen.whole_tasks:  # the alpaca preset: written with its instance
                return self.step(bar, "generated", 3)
            self.to_classify.put_nowait(record)
            self.step(bar, "generated")

        def classified(record: Classification) -> None:
            if record.is_classification is not None:
                self.to_instances.put_nowait(record)
            self.step(bar, "classified", 1 if record.is_classification is not None else 2)

        self.gen.on_accept, self.cls.on_done = accepted, classified
        self.ins.on_done = lambda record: self.step(bar, "with instances")
        width = self.job.llm.concurrency
        classify = [
            asyncio.ensure_future(self.worker(self.to_classify, self.cls.ask, self.cls.record))
            for _ in range(width)
        ]
        instances = [
            asyncio.ensure_future(self.worker(self.to_instances, self.ins.ask, self.ins.record))
            for _ in range(width)
        ]
        generate = asyncio.ensure_future(self.gen.run(target))
        try:
            await supervise([generate], classify + instances)
            for _ in classify:
                self.to_classify.put_nowait(None)
            await supervise(classify, instances)
            for _ in instances:
                self.to_instances.put_nowait(None)
            await supervise(instances, [])
        finally:
            for task in [generate, *classify, *instances]:
                task.cancel()
            await asyncio.gather(generate, *classify, *instances, return_exceptions=True)
            await self.clients.aclose()
        return generate.result()

    async def worker(
        self,
        queue: asyncio.Queue[T | None],
        ask: Callable[[T], Awaitable[R]],
        record: Callable[[T, R], None],
    ) -> None:
        while (item := await queue.get()) is not None:
            if self.stopped is not None or STOP.signum is not None:
                continue  # drain: left for the next run
            try:
                result = await ask(item)
            except BudgetExhausted as e:
                self.stopped = str(e)
                continue
            record(item, result)


async def supervise(
    waiting: Sequence[asyncio.Future[Any]], others: Sequence[asyncio.Future[Any]]
) -> None:
    """Wait for `waiting` to finish; re-raise at once if any task fails (e.g. the breaker)."""
    remaining, pending = set(waiting), set(waiting) | set(others)
    while remaining:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if (error := task.exception()) is not None:
                raise error
        remaining -= done


def run_pipeline(job: RunJob) -> RunReport:
    """Advance the pool to the target: generate, classify, instances, then filter."""
    pool = job.pool
    with pool.writing():
        with bulk_load():
            work = pool.work()
        have = len(work.machine)
        job.generate = settle_preset(pool, job.generate)  # before anything is written
        target = resolve_target(pool, job.target, job.add, have)
        manifest.record_run(pool, {"target": target})
        report = RunReport(target=target, generate=GenerateReport(target, have))
        report.preset = job.generate.preset
        idle = not (work.unclassified or work.without_instances)
        if have >= target and idle and dataset_current(pool) and job.curate is None:
            report.nothing_to_do = True  # decided before loading the index or any client
            return report
        cache = RequestCache(pool.cache, writer_thread=transport.offloaded(job.llm))
        failures = JsonlAppender(pool.failures)
        try:
            with bulk_load():
                pipe = Pipeline(job, cache, failures, work)
            return drive(job, pipe, report, have)
        finally:
            failures.close()
            cache.close()


def drive(job: RunJob, pipe: Pipeline, report: RunReport, have: int) -> RunReport:
    started, stamp = time.monotonic(), now()
    outcome = "error"
    running = {"started": stamp, "finished": None, "outcome": "running", "concurrency": None}
    manifest.record_run(job.pool, running)  # what `status` shows meanwhile, or after a kill
    total = 3 * max(report.target, have)
    bar = progress("run", total, pipe.steps, "steps", job.progress)
    try:
        with bar:
            try:
                report.generate = run_async(pipe.run(report.target, bar))
            except Interrupted as e:
                report.generate, report.interrupted = pipe.gen.report, e
                outcome = f"error: {e}"
                return report
        report.stopped = report.generate.stopped or pipe.stopped
        if report.stopped is None and job.curate is not None:
            report.curate = curated(job.curate, report)
        if report.stopped is None and report.interrupted is None:
            report.filter = write_dataset(FilterJob(job.pool, job.filter))
        left = [pipe.cls.report.left("unclassified"), pipe.ins.report.left("without instances")]
        if report.curate is not None:
            left.append(report.curate.left("instances unscored"))
        report.incomplete = ", ".join(filter(None, left)) or None
        outcome = manifest.outcome(report.stopped, report.incomplete)
        return report
    except BaseException as e:
        outcome = f"error: {pipe.llms['generate'].redact(str(e)) or type(e).__name__}"
        raise
    finally:
        report.elapsed = time.monotonic() - started
        report.counts = dict(pipe.cls.report.counts + pipe.ins.report.counts)
        report.concurrency = pipe.flow.limit.summary()
        report.generate.check_yield(job.llm.api)
        report.warnings = report.generate.warnings + classify_warnings(report.counts, job.llm.api)
        report.warnings += instances_warnings(report.counts, job.llm.api)
        template = pipe.gen.template
        own = {  # what `generate` records of stage 1 too (the report's provenance shows it)
            "generate": {
                "generate": job.generate.model_dump(mode="json"),
                "sampling": job.generate.sampling(job.llm.api),
                "seed": job.seed,
                "prompts": {template.name: template.sha256},
            }
        }
        for stage, llm in pipe.llms.items():
            report.usage[stage] = llm.usage
            manifest.record_stage(
                job.pool,
                stage,
                {"started": stamp, "settings": job.llm.public(), "outcome": outcome}
                | own.get(stage, {}),
                llm.usage,
            )
        if report.curate is not None:  # in the run's requests, tokens and cost (its own entry)
            report.usage["curate"] = report.curate.usage
        manifest.record_run(
            job.pool,
            {
                "target": report.target,
                "started": stamp,
                "finished": now(),
                "outcome": outcome,
                "concurrency": report.concurrency,
            },
        )
        data = manifest.with_spend(job.pool)
        report.spent = {stage: entry.get("totals", {}) for stage, entry in data["stages"].items()}


def curated(job: CurateJob, report: RunReport) -> CurateReport:
    """`run --curate`: the judge scores what it has not scored yet, after stage 3."""
    scores = judge_items(job, pool_items(job.pool))
    report.stopped, report.interrupted = scores.stopped, scores.interrupted
    return scores


def dataset_current(pool: Pool) -> bool:
    """Whether stage 4's output is newer than everything it is made from."""
    out = pool.dataset
    if not out.exists():
        return False
    inputs = [pool.seeds, pool.instructions, pool.classifications, pool.instances]
    return all(out.stat().st_mtime >= p.stat().st_mtime for p in inputs if p.exists())
