"""Batch mode: the stages' requests through the OpenAI Batch API, or an offline engine.

Each invocation collects finished batches (responses go into the request cache under the
online keys), applies cached responses through the stages' own parsing and pool writes, then
builds what each stage needs next and submits it. The ledger records every file before and
after each call, so a crash between two calls neither loses nor duplicates a batch.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from selfinstruct.clock import now
from selfinstruct.config import (
    STAGES,
    ClassifySettings,
    FilterSettings,
    GenerateSettings,
    InstancesSettings,
    Settings,
)
from selfinstruct.errors import ConfigError
from selfinstruct.llm.batchfiles import Ledger, Result, batch_request, split
from selfinstruct.llm.client import LLM, TERMINAL, Request, prices
from selfinstruct.method.parsing import parse_yes_no
from selfinstruct.models import (
    BatchEvent,
    BatchRequest,
    Classification,
    Failure,
    MachineInstruction,
    Usage,
)
from selfinstruct.pipeline.batch_remote import Remote
from selfinstruct.pipeline.run import dataset_current, resolve_target
from selfinstruct.pipeline.workers import generator, workers
from selfinstruct.pricing import Prices, cost
from selfinstruct.stages.alpaca import settle_preset
from selfinstruct.stages.curate import STAGE as CURATE
from selfinstruct.stages.evolve import STAGE as EVOLVE
from selfinstruct.stages.evolve import EvolveJob, Evolver, templates
from selfinstruct.stages.filter import FilterJob, FilterReport, write_dataset
from selfinstruct.stages.generate import GenerateReport, Generator
from selfinstruct.stages.preferences import JUDGE_STAGE as PREFERENCES_JUDGE
from selfinstruct.store import manifest
from selfinstruct.store.cache import Completion, RequestCache
from selfinstruct.store.pool import JsonlAppender, Pool

ROUNDS_PER_SLOT = 8  # a stage 1 round is at most concurrency x this many requests
DEFAULT_YIELD = 3.0  # new instructions per stage 1 request, until the pool says otherwise
MIN_YIELD = 0.25


@dataclass
class BatchJob:
    """What a batch command resolved from flags, env and config."""

    pool: Pool
    llm: Settings
    stages: tuple[str, ...]
    generate: GenerateSettings
    classify: ClassifySettings
    instances: InstancesSettings
    prompts: Path | None
    seeds: Path | None = None
    target: int | None = None
    add: int | None = None
    seed: int = 0
    filter: FilterSettings | None = None  # `run --batch`: saves the target, runs stage 4
    evolve: EvolveJob | None = None  # `evolve --batch`: with "evolve" in stages


@dataclass
class BatchReport:
    target: int | None = None
    generate: GenerateReport | None = None
    counts: Counter[str] = field(default_factory=Counter)
    collected: list[BatchEvent] = field(default_factory=list)
    waiting: list[tuple[BatchEvent, str]] = field(default_factory=list)
    submitted: list[BatchEvent] = field(default_factory=list)
    exported: list[BatchEvent] = field(default_factory=list)
    imported: Counter[str] = field(default_factory=Counter)
    usage: dict[str, Usage] = field(default_factory=lambda: {s: Usage() for s in STAGES})
    dataset: FilterReport | None = None
    stopped: str | None = None

    @property
    def idle(self) -> bool:
        """Nothing collected, imported, applied, waiting, submitted or exported."""
        gen = self.generate.accepted if self.generate else 0
        moved = self.collected or self.imported or self.waiting or self.submitted or self.exported
        return not (moved or self.counts or gen)


class Budget:
    """--max-requests and --max-cost on what one invocation submits (cost: an upper bound)."""

    def __init__(self, settings: Settings, prices: Prices | None) -> None:
        self.settings, self.prices = settings, prices
        self.requests, self.cost = 0, 0.0
        self.stopped: str | None = None

    def allows(self, req: BatchRequest) -> bool:
        s = self.settings
        if s.max_requests is not None and self.requests >= s.max_requests:
            self.stopped = f"reached --max-requests {s.max_requests}"
            return False
        # prompt tokens at most about a quarter of the characters; the reply at most max_tokens
        prompt = len(json.dumps(req.body)) // 4  # no cached token: the worst case
        worst = cost(self.prices, prompt, req.body["max_tokens"], batch=True)
        if s.max_cost is not None and worst is not None and self.cost + worst > s.max_cost:
            self.stopped = f"reached --max-cost ${s.max_cost:.2f}"
            return False
        self.requests, self.cost = self.requests + 1, self.cost + (worst or 0.0)
        return True


class Batches:
    """One invocation over a locked pool: the stage workers, the cache, the ledger, the API."""

    def __init__(self, job: BatchJob, cache: RequestCache, failures: JsonlAppender) -> None:
        self.job, self.pool, self.cache, self.failures = job, job.pool, cache, failures
        self.ledger = Ledger(job.pool)
        self.started = now()
        if "generate" in job.stages:  # a mixed pool is refused before anything is written
            job.generate = settle_preset(job.pool, job.generate)
        self.report = BatchReport(target=self.resolve_target())
        self.llms = {s: LLM(job.llm, cache, failures, s, connect=False) for s in STAGES}
        self.prices = prices(job.llm)
        self.budget = Budget(job.llm, self.prices)
        self.failed = {f.request for f in self.pool.read(self.pool.failures, Failure)}
        self.remote = Remote(self.ledger, job.llm)
        self.gen = self.generator()
        self.cls, self.ins = workers(job, self.llms)
        self.evolver = self.evolution()

    def evolution(self) -> Evolver | None:
        """`evolve --batch`: the Evolver on a request-building LLM of its own."""
        if self.job.evolve is None:
            return None
        llm = LLM(self.job.llm, self.cache, self.failures, EVOLVE, connect=False)
        self.llms[EVOLVE], self.report.usage[EVOLVE] = llm, llm.usage
        return Evolver(self.pool, llm, self.job.evolve, templates(self.job.evolve))

    def resolve_target(self) -> int | None:
        """Stage 1's target: -n, else the one `run` saved, else the last generate batch's."""
        job, pool = self.job, self.pool
        if job.filter is not None:
            have = sum(1 for _ in pool.read(pool.instructions, MachineInstruction))
            target = resolve_target(pool, job.target, job.add, have)
            manifest.record_run(pool, {"target": target})
            return target
        if job.target is not None:
            return job.target
        saved = manifest.load(pool).get("run", {}).get("target")
        if saved is not None:
            return int(saved)
        made = [e for e in self.ledger.latest.values() if e.target is not None]
        if made:
            return max(made, key=lambda e: e.time).target
        if job.stages == ("generate",):
            raise ConfigError(f"the pool {pool.root} has no target yet; pass --num-instructions N")
        return None

    def generator(self) -> Generator | None:
        job, target = self.job, self.report.target
        if "generate" not in job.stages or target is None:
            return None
        llm = self.llms["generate"]
        gen = generator(job, llm)
        gen.report = GenerateReport(target=target, before=len(gen.machine), usage=llm.usage)
        self.report.generate = gen.report
        return gen

    def open(self) -> list[BatchEvent]:
        """The open batches on the generator's server: the three stages' and those of
        distill, backtranslate and evolve (the judge's are `curate --batch`'s and `preferences
        --batch`'s, on the judge's server: pipeline/judge_batch.py, preferences_batch.py)."""
        return [e for e in self.ledger.open() if e.stage not in (CURATE, PREFERENCES_JUDGE)]

    # -- collect: finished batches into the cache

    def collect(self) -> None:
        for event in [e for e in self.open() if e.state == "submitted"]:
            info, results = self.remote.patiently(self.remote.fetch, event)
            if info.status not in TERMINAL:
                self.report.waiting.append((event, info.status))
                continue
            why = f"batch {info.status}" + (f": {info.error}" if info.error else "")
            done, failed = self.store(event.file, results, why)
            changes = {"status": info.status, "done": done, "failed": failed, "error": info.error}
            self.report.collected.append(self.ledger.record(event, "collected", **changes))

    def store(self, name: str, results: dict[str, Result], missing: str | None) -> tuple[int, int]:
        """Cache each response under its online key; a failed one is simply not done yet."""
        done = failed = 0
        for req in self.ledger.requests(name):
            got = results.get(req.custom_id)
            if got is not None and got.completion is not None:
                done += 1
                self.cache_response(req, got.completion)
            elif got is not None or missing is not None:
                failed += 1
                self.fail(req, got.error if got is not None else str(missing))
        return done, failed

    def cache_response(self, req: BatchRequest, completion: Completion) -> None:
        if self.cache.get(req.custom_id) is None:  # collected or imported before: paid once
            request = {"body": req.body, "meta": req.meta}
            tokens = (completion.prompt_tokens, completion.completion_tokens)
            spent = cost(self.prices, *tokens, completion.cached_tokens, batch=True)
            self.cache.put(req.custom_id, req.stage, request, completion, spent, batched=True)
            self.usage(req.stage).add(completion, self.prices, batch=True)

    def usage(self, stage: str) -> Usage:
        """A stage's spend; a batch of another command's stage (`distill --batch`) too."""
        return self.report.usage.setdefault(stage, Usage())

    def fail(self, req: BatchRequest, error: str) -> None:
        self.usage(req.stage).failed += 1
        if req.custom_id not in self.failed:
            self.failed.add(req.custom_id)
            message = self.llms["generate"].redact(error)  # one key for every stage
            record = Failure(
                stage=req.stage, request=req.custom_id, error=message, attempts=1, time=time.time()
            )
            self.failures.append(record)

    # -- apply: cached responses into the pool, through the stages' own code

    def apply(self) -> None:
        if self.gen is not None:
            self.gen.replay(self.gen.report)
        if "classify" in self.job.stages:
            for item in self.to_classify():
                req, got = self.classify_chain(item)
                if got is not None:
                    if req.meta["sample"]:  # the answer of the retry
                        self.cls.report.counts["retried"] += 1
                    self.cls.record(item, (req.key, got))
        if "instances" in self.job.stages:
            for c in self.to_instances():
                req = self.ins.build(c)
                if (got := self.cache.get(req.key)) is not None:
                    self.ins.record(c, (req.key, got))
        self.report.counts = self.cls.report.counts + self.ins.report.counts
        if self.evolver is not None:
            self.evolver.apply_cached()
            done = self.evolver.report
            self.report.counts["evolved"] += sum(done.accepted.values())
            self.report.counts["evolve_rejected"] += sum(done.rejected.values())

    def to_classify(self) -> list[MachineInstruction]:
        return self.pool.work().unclassified

    def to_instances(self) -> list[Classification]:
        return self.pool.work().without_instances

    def classify_chain(self, item: MachineInstruction) -> tuple[Request, Completion | None]:
        """The request whose answer decides (the retry after an unparsed one) and its answer."""
        req = self.cls.build(item)
        got = self.cache.get(req.key)
        if got is not None and parse_yes_no(got.text) is None:
            req = self.cls.build(item, retry=True)
            got = self.cache.get(req.key)
        return req, got

    # -- submit: what each stage needs next

    def next_requests(self, stage: str, busy: set[str]) -> Iterator[Request]:
        if stage == EVOLVE and self.evolver is not None:
            yield from self.evolver.next_requests(busy)
        elif stage == "generate":
            yield from self.next_rounds()
        elif stage == "classify":
            chains = (self.classify_chain(item) for item in self.to_classify())
            yield from (req for req, got in chains if got is None and req.key not in busy)
        else:
            reqs = (self.ins.build(c) for c in self.to_instances())
            yield from (r for r in reqs if r.key not in busy and self.cache.get(r.key) is None)

    def next_rounds(self) -> Iterator[Request]:
        """One round of stage 1, sampled from the pool after the previous round's collect."""
        gen, target = self.gen, self.report.target
        if gen is None or target is None or any(e.stage == "generate" for e in self.ledger.open()):
            return
        remaining = target - len(gen.machine)
        if remaining > 0:
            responses = self.cache.count("generate")
            rate = max(MIN_YIELD, len(gen.machine) / responses) if responses else DEFAULT_YIELD
            n = min(math.ceil(remaining / rate), self.job.llm.concurrency * ROUNDS_PER_SLOT)
            for _ in range(n):
                yield gen.build_round(gen.rounds.take("generate.round"))

    def write_next(self, state: str) -> list[BatchEvent]:
        """Write the next requests of each stage into files at the API's limits."""
        busy = self.ledger.open_ids()
        events: list[BatchEvent] = []
        for stage in self.job.stages:
            built = (batch_request(r, self.job.llm.api) for r in self.next_requests(stage, busy))
            target = self.report.target if stage == "generate" else None
            for chunk in split(itertools.takewhile(self.budget.allows, built)):
                events.append(self.ledger.write(chunk, state, target))
        self.report.stopped = self.budget.stopped
        return events

    def submit(self) -> None:
        resume = [e for e in self.open() if e.state != "submitted"]  # a run stopped early
        for event in resume + self.write_next("written"):
            self.report.submitted.append(self.remote.push(event))

    # -- the end of an invocation

    def finish_run(self) -> None:
        """`run --batch`: stage 4 once everything up to the target is done; the last run."""
        gen, target, stopped = self.gen, self.report.target, self.report.stopped
        if self.job.filter is None or gen is None or target is None:
            return
        finished = len(gen.machine) >= target and not self.open()
        finished = finished and not self.to_classify() and not self.to_instances()
        if finished and not dataset_current(self.pool):
            self.report.dataset = write_dataset(FilterJob(self.pool, self.job.filter))
        last = {"started": self.started, "finished": now(), "outcome": "batch"}
        if stopped:
            last["outcome"] = f"batch, stopped: {stopped}"
        manifest.record_run(self.pool, last)

    def close(self) -> None:
        for stage, usage in self.report.usage.items():
            if usage.requests or usage.failed:
                entry = {
                    "started": self.started,
                    "outcome": "batch",
                    "settings": self.job.llm.public(),
                }
                manifest.record_stage(self.pool, stage, entry, usage)
        if self.gen is not None:
            self.gen.close()
        if self.evolver is not None:
            self.evolver.close()
        self.cls.out.close()
        self.ins.out.close()
        self.ledger.close()
        self.remote.close()


def session(
    job: BatchJob,
    *steps: Callable[[Batches], object],
    make: Callable[[BatchJob, RequestCache, JsonlAppender], Batches] | None = None,
) -> BatchReport:
    """Lock the pool, run the steps over one Batches (or `make`'s), save what it spent."""
    pool = job.pool
    with pool.writing():
        cache, failures = RequestCache(pool.cache), JsonlAppender(pool.failures)
        batches: Batches | None = None
        try:
            batches = (make or Batches)(job, cache, failures)
            for step in steps:
                step(batches)
            return batches.report
        finally:
            if batches is not None:
                batches.close()
            failures.close()
            cache.close()


def advance(job: BatchJob) -> BatchReport:
    """--batch: collect what finished, apply it, submit what is next (one cron line)."""
    return session(job, Batches.collect, Batches.apply, Batches.submit, Batches.finish_run)


def submit(job: BatchJob) -> BatchReport:
    return session(job, Batches.apply, Batches.submit)


def collect(job: BatchJob) -> BatchReport:
    return session(job, Batches.collect, Batches.apply)
