"""`run --backtranslate FILE`: instructions for texts you have (backtranslate), then filter."""

from __future__ import annotations

from dataclasses import dataclass

from selfinstruct.clock import now
from selfinstruct.config import FilterSettings
from selfinstruct.pipeline.batch import BatchJob, BatchReport
from selfinstruct.pipeline.batch_backtranslate import advance
from selfinstruct.stages.backtranslate import BacktranslateJob, BacktranslateReport, backtranslate
from selfinstruct.stages.filter import FilterJob, FilterReport, filter_pool
from selfinstruct.store import manifest


@dataclass
class AugmentReport:
    backtranslate: BacktranslateReport
    dataset: FilterReport | None = None  # None: stopped early, or batches still open
    batch: BatchReport | None = None


def augment(job: BacktranslateJob, settings: FilterSettings) -> AugmentReport:
    """Backtranslate `job.source` into the pool, then write the dataset (unless stopped)."""
    started = now()
    report = AugmentReport(backtranslate(job))  # a bad input stops here, with nothing written
    bt = report.backtranslate
    outcome = "interrupted" if bt.interrupted else manifest.outcome(bt.stopped, bt.incomplete())
    if bt.interrupted is None and bt.stopped is None:
        # curate (issue 17) goes here: between the augmentation and the filter
        report.dataset = filter_pool(FilterJob(job.pool, settings))
    last = {"started": started, "finished": now(), "outcome": f"backtranslate, {outcome}"}
    manifest.record_run(job.pool, last)
    return report


def augment_batch(job: BacktranslateJob, plan: BatchJob, settings: FilterSettings) -> AugmentReport:
    """Batch mode: collect, record, submit; the dataset once no segment is left to ask."""
    batch, bt = advance(plan, job)
    report = AugmentReport(bt, batch=batch)
    if bt.pending == 0 and not batch.submitted:
        # curate (issue 17) goes here: between the augmentation and the filter
        report.dataset = filter_pool(FilterJob(job.pool, settings))
    return report
