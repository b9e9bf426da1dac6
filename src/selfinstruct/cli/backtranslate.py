"""`selfinstruct backtranslate`: instructions for texts you already have, into the pool."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from selfinstruct.cli.base import (
    BatchOpt,
    PoolOpt,
    ProgressOpt,
    PromptsOpt,
    SeedsOpt,
    finish,
    llm_command,
    open_pool,
)
from selfinstruct.cli.batch import batch_job
from selfinstruct.cli.judge import curate_rows
from selfinstruct.cli.summary import (
    Log,
    batch_rows,
    reason_rows,
    usage_rows,
    warning_rows,
)
from selfinstruct.config import BacktranslateSettings, FileConfig, FilterSettings, Settings

if TYPE_CHECKING:
    from selfinstruct.pipeline.batch import BatchReport
    from selfinstruct.stages.backtranslate import BacktranslateJob, BacktranslateReport
    from selfinstruct.stages.curate import CurateJob
    from selfinstruct.stages.filter import FilterReport

SourceArg = Annotated[
    Path,
    typer.Argument(
        help="A directory of .txt/.md files, or a JSONL, JSON list or Parquet file.",
        show_default=False,
    ),
]
FieldOpt = Annotated[
    str | None, typer.Option(help="The text field of the records.", show_default="text")
]
MinWordsOpt = Annotated[
    int | None, typer.Option(min=1, help="Skip segments shorter than this.", show_default="30")
]
MaxWordsOpt = Annotated[
    int | None,
    typer.Option(
        min=1, help="Pack paragraphs up to this many words; skip a longer one.", show_default="300"
    ),
]


@llm_command
def backtranslate_cmd(
    llm: Settings,
    config: FileConfig,
    source: SourceArg,
    field: FieldOpt = None,
    min_words: MinWordsOpt = None,
    max_words: MaxWordsOpt = None,
    seeds: SeedsOpt = None,
    pool: PoolOpt = Path("data"),
    prompts: PromptsOpt = None,
    progress: ProgressOpt = True,
    batch: BatchOpt = False,
) -> None:
    """Write the instruction each segment of your texts answers; the pairs join the pool."""
    from selfinstruct.pipeline.batch_backtranslate import advance
    from selfinstruct.stages.backtranslate import backtranslate

    job = backtranslate_job(llm, config, source, field, min_words, max_words, seeds, pool)
    job.prompts, job.progress = prompts, progress
    if batch:
        plan = batch_job(llm, config, pool, (), prompts, seeds=seeds)
        report, bt = advance(plan, job)
        return finish("backtranslate", batch_summary(bt, report), report.stopped)
    print_backtranslate(backtranslate(job), job)


def backtranslate_job(
    llm: Settings,
    config: FileConfig,
    source: Path,
    field: str | None,
    min_words: int | None,
    max_words: int | None,
    seeds: Path | None,
    pool: Path,
) -> BacktranslateJob:
    from selfinstruct.stages.backtranslate import BacktranslateJob

    flags = {"field": field, "min_words": min_words, "max_words": max_words}
    stage = config.settings(BacktranslateSettings, "backtranslate", flags)
    return BacktranslateJob(
        pool=open_pool(pool, seeds), llm=llm, stage=stage, prompts=None, source=source, seeds=seeds
    )


def input_rows(report: BacktranslateReport) -> list[tuple[str, str]]:
    skipped = sum(report.skipped.values())
    rows = [("texts", f"{report.texts} read, {report.segments} segments, {skipped} skipped")]
    rows += reason_rows(report.skipped)
    return [*rows, ("done before", f"{report.done_before} segments (by earlier runs)")]


def result_rows(report: BacktranslateReport) -> list[tuple[str, str]]:
    rows = [("pool", f"+{report.counts['accepted']} instructions with their answer")]
    rows += [("rejected", str(sum(report.rejected.values())))] + reason_rows(report.rejected)
    return rows


def batch_summary(bt: BacktranslateReport, report: BatchReport) -> list[tuple[str, str]]:
    applied = result_rows(bt) if bt.counts["accepted"] or bt.rejected else []
    return input_rows(bt) + applied + [("to ask", f"{bt.pending} segments")] + batch_rows(report)


def print_backtranslate(report: BacktranslateReport, job: BacktranslateJob) -> None:
    parked = report.counts["in_open_batches"]
    if report.pending == 0 and parked:
        typer.echo(
            f"Nothing to send: {parked} segments wait in open batches (`selfinstruct "
            f"backtranslate {job.source} --batch` brings them in)."
        )
        return
    if report.pending == 0:
        skipped = sum(report.skipped.values())
        typer.echo(
            f"Nothing to do: {report.done_before} segments of {job.source} were done by earlier "
            f"runs ({skipped} skipped as too short or too long)."
        )
        return
    rows = [*input_rows(report), ("this run", f"{report.pending} segments")]
    rows += [*result_rows(report), ("failed", str(report.counts["failed"]))]
    if parked:
        rows.append(("in open batches", f"{parked} (`backtranslate --batch` brings them in)"))
    rows += [("elapsed", f"{report.elapsed:.1f}s")]
    rows += usage_rows(report.usage) + warning_rows(report.warnings)
    finish(
        "backtranslate",
        rows,
        report.stopped,
        report.incomplete(),
        report.interrupted,
    )


def run_augment(
    llm: Settings,
    config: FileConfig,
    source: Path,
    seeds: Path | None,
    pool: Path,
    prompts: Path | None,
    batch: bool,
    log: Log,
    curate: CurateJob | None = None,
) -> None:
    """`run --backtranslate FILE`: backtranslate, `--curate`, then filter (batch mode: once all
    is asked; `run --batch --curate` is refused before this)."""
    from selfinstruct.pipeline.augment import augment, augment_batch

    job = backtranslate_job(llm, config, source, None, None, None, seeds, pool)
    job.prompts, job.progress = prompts, not log.quiet
    settings = config.settings(FilterSettings, "filter")
    if batch:
        plan = batch_job(llm, config, pool, (), prompts, seeds=seeds)
        report = augment_batch(job, plan, settings)
        assert report.batch is not None
        rows = batch_summary(report.backtranslate, report.batch)
        return log.finish("run", rows + dataset_rows(report.dataset), report.batch.stopped)
    report = augment(job, settings, curate)
    bt = report.backtranslate
    rows = [*input_rows(bt), ("this run", f"{bt.pending} segments"), *result_rows(bt)]
    rows += [("failed", str(bt.counts["failed"])), *curate_rows(report.curate)]
    rows += dataset_rows(report.dataset) + usage_rows(bt.usage) + warning_rows(bt.warnings)
    stopped, interrupted, left = bt.stopped, bt.interrupted, [bt.incomplete()]
    if (scores := report.curate) is not None:
        rows += [(f"curate {k}", v) for k, v in usage_rows(scores.usage)]
        stopped, interrupted = stopped or scores.stopped, interrupted or scores.interrupted
        left.append(scores.left("instances unscored"))
    log.finish("run", rows, stopped, ", ".join(filter(None, left)) or None, interrupted)


def dataset_rows(dataset: FilterReport | None) -> list[tuple[str, str]]:
    if dataset is None:
        return []
    kept = f"{dataset.instances_kept} instances -> {dataset.out}"
    return [("dataset", kept), ("dropped", f"{sum(dataset.dropped.values())} -> {dataset.rejects}")]
