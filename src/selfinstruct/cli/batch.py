"""`selfinstruct batch ...`: the Batch API, or an offline engine (vllm run-batch)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from selfinstruct.cli.base import (
    JsonOpt,
    PoolOpt,
    PromptsOpt,
    SeedOpt,
    SeedsOpt,
    finish,
    llm_command,
    model_stages,
    open_pool,
)
from selfinstruct.cli.summary import Log, batch_rows, columns
from selfinstruct.config import (
    STAGES,
    FileConfig,
    Settings,
)
from selfinstruct.errors import ConfigError

if TYPE_CHECKING:
    from selfinstruct.pipeline.batch import BatchJob, BatchReport

batch_app = typer.Typer(
    help="Batch mode: the Batch API at half price, or an offline engine (vllm run-batch).",
    no_args_is_help=True,
)
StageOpt = Annotated[
    str, typer.Option(help="generate, classify, instances, or auto (every stage with work).")
]
BatchTargetOpt = Annotated[
    int | None,
    typer.Option(
        "--num-instructions", "-n", min=1, help="Stage 1's target.", show_default="the saved one"
    ),
]


def batch_job(
    llm: Settings,
    config: FileConfig,
    pool: Path,
    stages: tuple[str, ...],
    prompts: Path | None,
    seed: int | None = None,
    seeds: Path | None = None,
    target: int | None = None,
) -> BatchJob:
    from selfinstruct.pipeline.batch import BatchJob

    return BatchJob(
        pool=open_pool(pool, seeds),
        llm=llm,
        stages=stages,
        prompts=prompts,
        seeds=seeds,
        target=target,
        **model_stages(config),
        seed=random.randrange(2**31) if seed is None else seed,
    )


def run_batch(job: BatchJob, log_file: Path | None, quiet: bool) -> None:
    from selfinstruct.pipeline.batch import advance

    with Log(log_file, quiet) as log:
        report = advance(job)
        if report.idle and report.dataset is None:
            return log.echo(f"Nothing to do: {job.pool.root} is at its target of {report.target}.")
        log.finish("run", batch_rows(report), report.stopped)


def stages_of(stage: str) -> tuple[str, ...]:
    if stage == "auto":
        return STAGES
    if stage not in STAGES:
        raise ConfigError(f"unknown --stage {stage!r}; choose {', '.join(STAGES)} or auto")
    return (stage,)


def print_batch(name: str, report: BatchReport) -> None:
    if report.idle and report.dataset is None:
        return typer.echo("Nothing to do: no batch is open and no stage has requests to send.")
    finish(name, batch_rows(report), report.stopped)


@batch_app.command("submit")
@llm_command
def batch_submit_cmd(
    llm: Settings,
    config: FileConfig,
    stage: StageOpt = "auto",
    pool: PoolOpt = Path("data"),
    num_instructions: BatchTargetOpt = None,
    seeds: SeedsOpt = None,
    seed: SeedOpt = None,
    prompts: PromptsOpt = None,
) -> None:
    """Upload the requests each stage needs next and create their batches."""
    from selfinstruct.pipeline.batch import submit

    plan = batch_job(llm, config, pool, stages_of(stage), prompts, seed, seeds, num_instructions)
    print_batch("batch submit", submit(plan))


@batch_app.command("collect")
@llm_command
def batch_collect_cmd(
    llm: Settings, config: FileConfig, pool: PoolOpt = Path("data"), prompts: PromptsOpt = None
) -> None:
    """Download finished batches and write their results to the pool."""
    from selfinstruct.pipeline.batch import collect

    print_batch("batch collect", collect(batch_job(llm, config, pool, STAGES, prompts)))


@batch_app.command("status")
@llm_command
def batch_status_cmd(
    llm: Settings,
    config: FileConfig,
    pool: PoolOpt = Path("data"),
    as_json: JsonOpt = False,
) -> None:
    """Each batch's state and request counts (open ones as the server reports them)."""
    from selfinstruct.pipeline.batch_remote import batch_status

    rows = batch_status(open_pool(pool), llm)
    if as_json:
        return typer.echo(json.dumps(rows, indent=2))
    typer.echo(columns(rows) if rows else f"No batches in {pool}.")


@batch_app.command("export")
@llm_command
def batch_export_cmd(
    llm: Settings,
    config: FileConfig,
    out: Annotated[Path, typer.Option(help="Requests file (Batch API JSONL) for vllm run-batch.")],
    stage: StageOpt = "auto",
    pool: PoolOpt = Path("data"),
    num_instructions: BatchTargetOpt = None,
    seeds: SeedsOpt = None,
    seed: SeedOpt = None,
    prompts: PromptsOpt = None,
) -> None:
    """Write the next requests for an offline engine instead of uploading them."""
    from selfinstruct.pipeline.batch_offline import export

    plan = batch_job(llm, config, pool, stages_of(stage), prompts, seed, seeds, num_instructions)
    print_batch("batch export", export(plan, out))


@batch_app.command("import")
@llm_command
def batch_import_cmd(
    llm: Settings,
    config: FileConfig,
    results: Annotated[Path, typer.Argument(help="Batch API output JSONL (vllm run-batch -o).")],
    pool: PoolOpt = Path("data"),
    prompts: PromptsOpt = None,
) -> None:
    """Write the results of exported requests to the pool."""
    from selfinstruct.pipeline.batch_offline import import_results

    plan = batch_job(llm, config, pool, STAGES, prompts)
    print_batch("batch import", import_results(plan, results))
