"""`backtranslate --batch`: the segments' requests through batch mode's collect, apply, submit.

`Batches` does the collecting, the ledger and the uploads for every stage alike; this adds the
backtranslate stage to it: apply records each pending segment whose response is cached (the
online stage's own `record`), submit writes the requests of the segments still without one.
"""

from __future__ import annotations

from collections.abc import Iterator

from selfinstruct.llm.client import LLM, Request
from selfinstruct.models import Usage
from selfinstruct.pipeline.batch import Batches, BatchJob, BatchReport
from selfinstruct.stages.backtranslate import (
    STAGE,
    BacktranslateJob,
    BacktranslateReport,
    Piece,
    done_segments,
    plan,
    worker,
)
from selfinstruct.store.cache import RequestCache
from selfinstruct.store.pool import JsonlAppender, pool_seeds, store_seeds


class BacktranslateBatches(Batches):
    def __init__(
        self,
        job: BatchJob,
        bt_job: BacktranslateJob,
        pieces: list[Piece],
        report: BacktranslateReport,
        cache: RequestCache,
        failures: JsonlAppender,
    ) -> None:
        super().__init__(job, cache, failures)
        llm = LLM(job.llm, cache, failures, STAGE, connect=False)
        self.llms[STAGE] = llm
        self.report.usage.setdefault(STAGE, Usage())
        seeds = pool_seeds(self.pool, bt_job.seeds)
        store_seeds(self.pool, seeds)
        self.bt = worker(self.pool, llm, bt_job, seeds)
        report.usage = self.report.usage[STAGE]
        self.bt.report = report
        done = done_segments(self.pool)
        self.pending = [p for p in pieces if p.id not in done]
        report.done_before = len(pieces) - len(self.pending)

    def apply(self) -> None:
        super().apply()
        left = []
        for piece in self.pending:
            req = self.bt.build(piece)
            got = self.cache.get(req.key)
            if got is None:
                left.append(piece)
            else:
                self.bt.record(piece, (req.key, got))
        self.pending = left

    def next_requests(self, stage: str, busy: set[str]) -> Iterator[Request]:
        if stage != STAGE:
            yield from super().next_requests(stage, busy)
            return
        for piece in self.pending:
            req = self.bt.build(piece)
            if req.key not in busy and self.cache.get(req.key) is None:
                yield req

    def close(self) -> None:
        super().close()
        self.bt.close()


def advance(job: BatchJob, bt_job: BacktranslateJob) -> tuple[BatchReport, BacktranslateReport]:
    """Collect what finished, record the pairs it answers, submit the segments still to ask."""
    pieces, report = plan(bt_job.source, bt_job.stage)
    job.stages = (STAGE,)
    pool = job.pool
    with pool.writing():
        cache, failures = RequestCache(pool.cache), JsonlAppender(pool.failures)
        batches: BacktranslateBatches | None = None
        try:
            batches = BacktranslateBatches(job, bt_job, pieces, report, cache, failures)
            batches.collect()
            batches.apply()
            batches.submit()
            report.pending = len(batches.pending)
            return batches.report, report
        finally:
            if batches is not None:
                batches.close()
            failures.close()
            cache.close()
