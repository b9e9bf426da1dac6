"""`run --backtranslate FILE`: instructions for texts you have (backtranslate), the judge's
scores with `--curate` (self-curation, as the backtranslation paper does), then filter."""

from __future__ import annotations

from dataclasses import dataclass

from selfinstruct.clock import now
from selfinstruct.config import FilterSettings
from selfinstruct.pipeline.batch import BatchJob, BatchReport
from selfinstruct.pipeline.batch_backtranslate import advance
from selfinstruct.stages.backtranslate import BacktranslateJob, BacktranslateReport, backtranslate
from selfinstruct.stages.curate import CurateJob, CurateReport, judge_items, pool_items
from selfinstruct.stages.filter import FilterJob, FilterReport, filter_pool
from selfinstruct.store import manifest


@dataclass
class AugmentReport:
    backtranslate: BacktranslateReport
    dataset: FilterReport | None = None  # None: stopped early, or batches still open
    batch: BatchReport | None = None
    curate: CurateReport | None = None  # `--curate`: the judge's scores before the filter


def augment(
    job: BacktranslateJob, settings: FilterSettings, curate: CurateJob | None = None
) -> AugmentReport:
    """Backtranslate `job.source` into the pool, score it (`curate`), then write the dataset
    (unless stopped)."""
    started = now()
    report = AugmentReport(backtranslate(job))  # a bad input stops here, with nothing written
    bt = report.backtranslate
    outcome = "interrupted" if bt.interrupted else manifest.outcome(bt.stopped, bt.incomplete())
    going = bt.interrupted is None and bt.stopped is None
    if going and curate is not None:
        report.curate = scores = judge_items(curate, pool_items(job.pool))
        going = scores.interrupted is None and scores.stopped is None
        if not going:
            outcome = (
                "interrupted" if scores.interrupted else manifest.outcome(scores.stopped, None)
            )
    if going:
        report.dataset = filter_pool(FilterJob(job.pool, settings))
    last = {"started": started, "finished": now(), "outcome": f"backtranslate, {outcome}"}
    manifest.record_run(job.pool, last)
    return report


def augment_batch(job: BacktranslateJob, plan: BatchJob, settings: FilterSettings) -> AugmentReport:
    """Batch mode: collect, record, submit; the dataset once no segment is left to ask."""
    batch, bt = advance(plan, job)
    report = AugmentReport(bt, batch=batch)
    if bt.pending == 0 and not batch.submitted:
        report.dataset = filter_pool(FilterJob(job.pool, settings))
    return report
