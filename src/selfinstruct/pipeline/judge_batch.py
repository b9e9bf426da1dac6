"""Batch mode for a judge (`curate --batch`): the same ledger, request files, cache and
budget as the three stages' batch mode (pipeline/batch.py), on the judge's own server.

One invocation collects the judge's finished batches into the cache, records every instance
whose deciding reply is cached (the retry's after an unparsed one), and submits the
requests still missing: first replies, then retries for those that did not parse.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from selfinstruct.clock import now
from selfinstruct.llm.batchfiles import Ledger, Result, batch_request, split
from selfinstruct.llm.client import LLM, TERMINAL
from selfinstruct.method.prompts import load_template
from selfinstruct.models import BatchRequest, Curation, Failure
from selfinstruct.pipeline.batch import Budget
from selfinstruct.pipeline.batch_remote import Remote
from selfinstruct.pricing import cost
from selfinstruct.stages.curate import (
    STAGE,
    CurateJob,
    CurateReport,
    curation,
    distribution,
    pool_items,
    scorer,
)
from selfinstruct.stages.judge import Item, Judge, JudgeWorker, verdicts
from selfinstruct.store import manifest
from selfinstruct.store.cache import RequestCache
from selfinstruct.store.pool import JsonlAppender


class JudgeBatch:
    """One stage of judge requests over a locked pool's ledger and cache."""

    def __init__(
        self, ledger: Ledger, llm: LLM, judge: Judge[Any], worker: JudgeWorker[Any, Any]
    ) -> None:
        self.ledger, self.llm, self.judge, self.worker = ledger, llm, judge, worker
        self.remote = Remote(ledger, llm.settings)
        self.counts = worker.report.counts

    def open(self) -> list[Any]:
        return [e for e in self.ledger.open() if e.stage == self.llm.stage]

    def collect(self) -> None:
        for event in [e for e in self.open() if e.state == "submitted"]:
            info, results = self.remote.patiently(self.remote.fetch, event)
            if info.status not in TERMINAL:
                self.counts["waiting"] += event.requests
                continue
            why = f"batch {info.status}" + (f": {info.error}" if info.error else "")
            done = failed = 0
            for req in self.ledger.requests(event.file):
                got = results.get(req.custom_id)
                if got is not None and got.completion is not None:
                    done += 1
                    self.store(req, got)
                else:
                    failed += 1
                    self.fail(req, got.error if got is not None else why)
            changes = {"status": info.status, "done": done, "failed": failed, "error": info.error}
            self.ledger.record(event, "collected", **changes)

    def store(self, req: BatchRequest, got: Result) -> None:
        completion = got.completion
        assert completion is not None
        if self.llm.cache.get(req.custom_id) is None:  # collected before: paid once
            spent = cost(
                self.llm.prices, completion.prompt_tokens, completion.completion_tokens, True
            )
            request = {"body": req.body, "meta": req.meta}
            self.llm.cache.put(req.custom_id, req.stage, request, completion, spent, batched=True)
            self.llm.usage.add(completion, self.llm.prices, batch=True)

    def fail(self, req: BatchRequest, error: str) -> None:
        self.llm.usage.failed += 1
        failure = Failure(
            stage=req.stage,
            request=req.custom_id,
            error=self.llm.redact(error),
            attempts=1,
            time=time.time(),
        )
        self.llm.failures.append(failure)

    def apply_and_submit(self, pending: list[Item]) -> None:
        """Record what the cache answers; submit the requests of the rest."""
        busy = self.ledger.open_ids()
        todo = []
        for item in pending:
            req, asked = self.judge.chain(item, self.llm.cache.get)
            if asked.completion is not None:
                self.counts["retried"] += bool(req.meta["sample"])
                self.worker.record(item, asked)
            elif req.key not in busy:
                todo.append(req)
        budget = Budget(self.llm.settings, self.llm.prices)
        resume = [e for e in self.open() if e.state != "submitted"]
        built = (batch_request(r, self.llm.settings.api) for r in todo)
        fresh = [
            self.ledger.write(chunk) for chunk in split(itertools.takewhile(budget.allows, built))
        ]
        for event in resume + fresh:
            self.counts["submitted"] += self.remote.push(event).requests
        self.worker.report.stopped = budget.stopped

    def close(self) -> None:
        self.remote.close()


def advance_curate(job: CurateJob) -> CurateReport:
    """`curate --batch`: collect, apply, submit; run it again until nothing is waiting."""
    settings = job.judge.llm(job.llm)
    template = load_template(STAGE, job.prompts)
    pool = job.pool
    with pool.writing():
        cache, failures = RequestCache(pool.cache), JsonlAppender(pool.failures)
        ledger = Ledger(pool)
        llm = LLM(settings, cache, failures, STAGE, connect=False)
        judge = scorer(llm, template, job.judge)
        report = CurateReport(usage=llm.usage, judge=judge.identity)
        worker = JudgeWorker(judge, pool.curation, curation, report)
        batches = JudgeBatch(ledger, llm, judge, worker)
        started = now()
        try:
            batches.collect()
            items = pool_items(pool)
            done = verdicts(pool, pool.curation, Curation, judge.identity)
            pending = [item for item in items if item.id not in done]
            report.done_before, report.pending, report.total = len(done), len(pending), len(items)
            batches.apply_and_submit(pending)
            if llm.usage.requests or llm.usage.failed:
                entry = {"started": started, "outcome": "batch", "settings": settings.public()}
                manifest.record_stage(pool, STAGE, {**entry, "judge": judge.identity}, llm.usage)
        finally:
            worker.out.close()
            batches.close()
            ledger.close()
            failures.close()
            cache.close()
        report.scores = distribution(items, verdicts(pool, pool.curation, Curation, judge.identity))
        return report
