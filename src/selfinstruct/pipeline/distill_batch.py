"""`distill --batch`: the teacher's questions through the Batch API (at its lower price), on
batch mode's own collect / apply / submit steps and ledger (pipeline/batch.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from selfinstruct.llm.client import LLM, Request
from selfinstruct.models import Usage
from selfinstruct.pipeline.batch import Batches, BatchJob, BatchReport, session
from selfinstruct.stages.distill import STAGE, Distiller, DistillSettings, Question, check_api
from selfinstruct.stages.distill import pool_questions as read_questions
from selfinstruct.store.cache import RequestCache
from selfinstruct.store.pool import JsonlAppender


class DistillBatches(Batches):
    """Batches whose one stage is the teacher's: apply records cached answers, submit asks
    the rest (never one waiting in an open batch, never one answered)."""

    def __init__(
        self,
        job: BatchJob,
        cache: RequestCache,
        failures: JsonlAppender,
        settings: DistillSettings,
    ) -> None:
        self.settings = settings
        super().__init__(job, cache, failures)
        self.llms[STAGE] = LLM(job.llm, cache, failures, STAGE, connect=False)
        self.report.usage[STAGE] = Usage()
        self.distiller = Distiller(self.llms[STAGE], self.settings, self.pool)
        self.questions = read_questions(self.pool, settings.dataset_only)

    def apply(self) -> None:
        for q in self.distiller.missing(self.pool, self.questions):
            req = self.distiller.build(q)
            if (got := self.cache.get(req.key)) is not None:
                self.distiller.record(q, (req.key, got))
        self.report.counts = Counter(self.distiller.report.counts)

    def next_requests(self, stage: str, busy: set[str]) -> Iterator[Request]:
        for q in self.pending():
            req = self.distiller.build(q)
            if req.key not in busy and self.cache.get(req.key) is None:
                yield req

    def pending(self) -> list[Question]:
        return self.distiller.missing(self.pool, self.questions)

    def close(self) -> None:
        self.distiller.out.close()
        super().close()


def distill_batch(job: BatchJob, settings: DistillSettings) -> BatchReport:
    """One batch-mode invocation for the teacher: collect, apply, submit."""
    check_api(job.llm)
    job.stages = (STAGE,)

    def make(job: BatchJob, cache: RequestCache, failures: JsonlAppender) -> Batches:
        return DistillBatches(job, cache, failures, settings)

    steps = (lambda b: b.collect(), lambda b: b.apply(), lambda b: b.submit())  # overridden
    return session(job, *steps, make=make)
