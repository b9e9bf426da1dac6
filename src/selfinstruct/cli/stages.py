"""The stage commands (generate, classify, instances, filter, dedup), run, status, version."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from selfinstruct import __version__
from selfinstruct.cli.backtranslate import run_augment
from selfinstruct.cli.base import (
    NONE,
    OFF,
    BatchOpt,
    ConfigOpt,
    IncludeSeedsOpt,
    JsonOpt,
    PoolOpt,
    ProgressOpt,
    PromptsOpt,
    SeedOpt,
    SeedsOpt,
    TargetOpt,
    finish,
    finish_output,
    handle_errors,
    llm_command,
    model_stages,
    open_pool,
)
from selfinstruct.cli.batch import batch_job, print_batch, run_batch
from selfinstruct.cli.judge import (
    JudgeApiKeyOpt,
    JudgeBaseUrlOpt,
    JudgeModelOpt,
    curate_job,
    curate_rows,
)
from selfinstruct.cli.presets import (
    ForceOpt,
    Outputs,
    OutputsOpt,
    PresetOpt,
    TeacherOpt,
    preset_flags,
    teacher_rows,
)
from selfinstruct.cli.summary import (
    Log,
    parked_row,
    reason_rows,
    run_rows,
    status_rows,
    table,
    usage_rows,
    warning_rows,
)
from selfinstruct.config import (
    STAGES,
    ClassifySettings,
    FileConfig,
    FilterSettings,
    GenerateSettings,
    InstancesSettings,
    Settings,
    read_config_file,
)
from selfinstruct.errors import ConfigError

if TYPE_CHECKING:
    from selfinstruct import GenerateJob, GenerateReport, RunJob, StageReport
    from selfinstruct.stages.evolve import EvolveJob


@llm_command
def generate_cmd(
    llm: Settings,
    config: FileConfig,
    seeds: SeedsOpt = None,
    num_instructions: TargetOpt = 100,
    pool: PoolOpt = Path("data"),
    seed: SeedOpt = None,
    prompts: PromptsOpt = None,
    dry_run: Annotated[
        bool, typer.Option(help="Show settings and a prompt; send nothing.", show_default=OFF)
    ] = False,
    progress: ProgressOpt = True,
    batch: BatchOpt = False,
    preset: PresetOpt = None,
    force: ForceOpt = False,
) -> None:
    """Stage 1: bootstrap new instructions from the seeds until the pool holds -n of them."""
    from selfinstruct import GenerateJob, Pool, generate
    from selfinstruct.pipeline.batch import advance

    job = GenerateJob(
        pool=Pool(pool),
        seeds=seeds,
        target=num_instructions,
        llm=llm,
        prompts=prompts,
        stage=config.settings(GenerateSettings, "generate", preset_flags(preset, force)),
        progress=progress,
        seed=random.randrange(2**31) if seed is None else seed,
    )
    if dry_run:
        return show_dry_run(job)
    open_pool(pool, seeds)
    if batch:
        plan = batch_job(llm, config, pool, ("generate",), prompts, job.seed, seeds, job.target)
        plan.generate = job.stage
        return print_batch("generate", advance(plan))
    print_generate(generate(job), job)


@llm_command
def classify_cmd(
    llm: Settings,
    config: FileConfig,
    pool: PoolOpt = Path("data"),
    prompts: PromptsOpt = None,
    progress: ProgressOpt = True,
    batch: BatchOpt = False,
) -> None:
    """Stage 2: ask whether each machine instruction is a classification task."""
    from selfinstruct import StageJob, classify
    from selfinstruct.pipeline.batch import advance

    if batch:
        return print_batch(
            "classify", advance(batch_job(llm, config, pool, ("classify",), prompts))
        )
    stage = config.settings(ClassifySettings, "classify")
    report = classify(StageJob(open_pool(pool), llm, stage, prompts, progress))
    print_stage("classify", report, ["yes", "no", "unparsed", "retried", "failed"], "unclassified")


@llm_command
def instances_cmd(
    llm: Settings,
    config: FileConfig,
    pool: PoolOpt = Path("data"),
    max_instances: Annotated[
        int | None,
        typer.Option(
            help="Examples a completions reply may hold before it stops.", show_default="5"
        ),
    ] = None,
    prompts: PromptsOpt = None,
    progress: ProgressOpt = True,
    batch: BatchOpt = False,
) -> None:
    """Stage 3: write inputs and outputs (output-first for classification tasks)."""
    from selfinstruct import StageJob, instances
    from selfinstruct.pipeline.batch import advance

    flags = {"max_instances": max_instances}
    stage = config.settings(InstancesSettings, "instances", flags)
    if batch:
        plan = batch_job(llm, config, pool, ("instances",), prompts)
        plan.instances = stage
        return print_batch("instances", advance(plan))
    report = instances(StageJob(open_pool(pool), llm, stage, prompts, progress))
    kinds = ["output_first", "input_first", "instances", "no_instances_parsed", "failed"]
    print_stage("instances", report, kinds, "without instances")


@handle_errors
def filter_cmd(
    pool: PoolOpt = Path("data"),
    out: Annotated[
        Path | None, typer.Option(help="Dataset file.", show_default="POOL/dataset.jsonl")
    ] = None,
    include_seeds: IncludeSeedsOpt = False,
    rouge_threshold: Annotated[
        float | None, typer.Option(help="Drop above this ROUGE-L.", show_default="0.7")
    ] = None,
    max_instances: Annotated[
        int | None, typer.Option(help="Instances per task.", show_default="5")
    ] = None,
    min_score: Annotated[
        int | None,
        typer.Option(min=1, max=5, help="Keep instances `curate` scored K+.", show_default=NONE),
    ] = None,
    config: ConfigOpt = None,
    outputs: OutputsOpt = Outputs.original,
    teacher: TeacherOpt = None,
) -> None:
    """Stage 4: drop near-duplicates and bad instances; write the final dataset."""
    from selfinstruct import FilterJob, filter_pool

    flags = {
        "rouge_threshold": rouge_threshold,
        "max_instances": max_instances,
        "min_score": min_score,
    }
    settings = read_config_file(config).settings(FilterSettings, "filter", flags)
    job = FilterJob(open_pool(pool), settings, out, include_seeds, outputs.value, teacher)
    report = filter_pool(job)
    rows = teacher_rows(report) + [
        ("instructions", f"{report.tasks} in the pool, {report.tasks_kept} kept with instances"),
        (
            "dataset",
            f"{report.instances_kept} instances + {report.seeds} from seeds -> {report.out}",
        ),
        ("dropped", f"{sum(report.dropped.values())} -> {report.rejects}"),
        *reason_rows(report.dropped),
    ]
    finish("filter", rows, None)


@handle_errors
def dedup_cmd(
    src: Annotated[
        Path,
        typer.Argument(
            help="JSONL file or JSON list of records; - reads stdin.", show_default=False
        ),
    ],
    out: Annotated[
        Path, typer.Option(help="Kept records (a .json name writes a JSON list; - is stdout).")
    ],
    field: Annotated[
        str | None,
        typer.Option(
            help="The text to compare: a key, or LIST.ROLE for a chat's first turn of that role "
            "(messages.user, conversations.human).",
            show_default="detected: instruction, messages.user, conversations.user or prompt",
        ),
    ] = None,
    threshold: Annotated[
        float, typer.Option(min=0, max=1, help="Drop above this ROUGE-L F.")
    ] = 0.7,
    rejected: Annotated[
        Path | None, typer.Option(help="Write dropped records here.", show_default=NONE)
    ] = None,
    against: Annotated[
        Path | None, typer.Option(help="Also compare with this set.", show_default=NONE)
    ] = None,
) -> None:
    """Drop near-duplicate records (ROUGE-L F > threshold against an earlier kept one)."""
    from selfinstruct.outputs.dedup import dedup_file

    report = dedup_file(src, out, field, threshold, rejected, against)
    rows = [
        ("records", f"{report.total} (compared: {report.field})"),
        ("kept", f"{report.kept} -> {out}"),
        ("dropped", str(report.total - report.kept) + (f" -> {rejected}" if rejected else "")),
        ("elapsed", f"{report.elapsed:.2f}s"),
    ]
    finish_output("dedup", rows, out)


def show_dry_run(job: GenerateJob) -> None:
    from selfinstruct.llm.client import prices as llm_prices
    from selfinstruct.method.prompts import load_template
    from selfinstruct.stages.alpaca import ALPACA, alpaca_prompt, template_name, with_defaults
    from selfinstruct.stages.generate import sample_prompt
    from selfinstruct.store.pool import load_seeds

    stage = with_defaults(job.stage)
    template = load_template(template_name(stage, job.llm.api), job.prompts)
    seeds = load_seeds(job.seeds) if job.seeds else []
    first = alpaca_prompt if stage.preset == ALPACA else sample_prompt
    resolved = {
        "settings": job.llm.public(),
        "generate": stage.model_dump(mode="json"),
        "seed": job.seed,
        "pool": str(job.pool.root),
        "target": job.target,
        "prompts": {template.name: template.path},
    }
    prices = llm_prices(job.llm)
    resolved["prices"] = prices.describe() if prices else "unknown: set --price-in/--price-out"
    typer.echo(json.dumps(resolved, indent=2))
    if seeds:
        typer.echo("\nFirst prompt:\n" + first(seeds, stage, template, job.seed))


def print_generate(report: GenerateReport, job: GenerateJob) -> None:
    if report.accepted == 0 and report.before >= report.target and not report.interrupted:
        typer.echo(
            f"Nothing to do: {job.pool.root} already holds {report.before} machine instructions "
            f"(target {report.target}). Raise --num-instructions to add more."
        )
        return
    rows = [
        ("pool", f"{report.total} / {report.target} machine instructions (+{report.accepted})"),
        ("candidates", f"{report.candidates} ({report.replayed} responses reused from the cache)"),
        ("rejected", str(sum(report.rejected.values()))),
        *reason_rows(report.rejected),
        ("elapsed", f"{report.elapsed:.1f}s"),
    ]
    rows += usage_rows(report.usage) + warning_rows(report.warnings)
    finish("generate", rows, report.stopped, None, report.interrupted)


def print_stage(stage: str, report: StageReport, keys: list[str], left: str) -> None:
    parked = report.counts["in_open_batches"]
    if report.pending == 0 and parked:
        typer.echo(
            f"Nothing to send: {parked} instructions wait in open batches "
            "(`selfinstruct batch collect` brings them in)."
        )
        return
    if report.pending == 0:
        typer.echo(
            f"Nothing to do: all {report.done_before} instructions already have {stage} results."
        )
        return
    earlier = f"{report.done_before} done by earlier runs"
    rows = [("this run", f"{report.pending} instructions ({earlier})")]
    rows += [(key.replace("_", " "), str(report.counts[key])) for key in keys]
    if parked:
        rows.append(parked_row(parked))
    rows += [("elapsed", f"{report.elapsed:.1f}s")]
    finish(
        stage,
        rows + usage_rows(report.usage) + warning_rows(report.warnings),
        report.stopped,
        report.left(left),
        report.interrupted,
    )


@llm_command
def run_cmd(
    llm: Settings,
    config: FileConfig,
    seeds: SeedsOpt = None,
    num_instructions: Annotated[
        int | None,
        typer.Option(
            "--num-instructions", "-n", min=1, help="Set the target.", show_default="the saved one"
        ),
    ] = None,
    add: Annotated[
        int | None, typer.Option(min=1, help="Grow the saved target by K.", show_default=NONE)
    ] = None,
    pool: PoolOpt = Path("data"),
    seed: SeedOpt = None,
    prompts: PromptsOpt = None,
    log_file: Annotated[
        Path | None, typer.Option(help="Append the summary and errors here.", show_default=NONE)
    ] = None,
    quiet: Annotated[
        bool, typer.Option(help="No progress or summary (errors still).", show_default=OFF)
    ] = False,
    batch: BatchOpt = False,
    preset: PresetOpt = None,
    force: ForceOpt = False,
    backtranslate: Annotated[
        Path | None,
        typer.Option(
            help="Instead of stages 1-3: instructions for these texts (as `backtranslate`).",
            show_default=NONE,
        ),
    ] = None,
    evolve: Annotated[
        str | None,
        typer.Option(
            help="Then evolve with these operations (see `evolve`), and process the new ones.",
            show_default=NONE,
        ),
    ] = None,
    curate: Annotated[
        bool,
        typer.Option(
            "--curate",
            help="Score instances with the judge (curate) before filter.",
            show_default=OFF,
        ),
    ] = False,
    judge_model: JudgeModelOpt = None,
    judge_base_url: JudgeBaseUrlOpt = None,
    judge_api_key: JudgeApiKeyOpt = None,
) -> None:
    """All four stages toward the target; safe to run from cron (exits 0 when done)."""
    from selfinstruct import RunJob, run_pipeline

    judging = curate_job(
        curate, config, pool, llm, prompts, not quiet, judge_model, judge_base_url, judge_api_key
    )
    if batch and judging:
        raise ConfigError("run --batch does not curate yet: run `curate --batch` after it")
    if batch and evolve is not None:
        raise ConfigError(
            "--evolve does not go with run --batch: run `selfinstruct evolve --batch`"
        )
    if backtranslate is not None:
        with Log(log_file, quiet) as log:
            return run_augment(
                llm, config, backtranslate, seeds, pool, prompts, batch, log, judging
            )
    stages = {
        **model_stages(config),
        "generate": config.settings(GenerateSettings, "generate", preset_flags(preset, force)),
    }
    if batch:
        plan = batch_job(llm, config, pool, STAGES, prompts, seed, seeds, num_instructions)
        plan.add, plan.filter = add, config.settings(FilterSettings, "filter")
        plan.generate = stages["generate"]
        return run_batch(plan, log_file, quiet)
    job = RunJob(
        pool=open_pool(pool, seeds),
        seeds=seeds,
        target=num_instructions,
        add=add,
        llm=llm,
        prompts=prompts,
        **stages,
        filter=config.settings(FilterSettings, "filter"),
        seed=random.randrange(2**31) if seed is None else seed,
        progress=not quiet,
        curate=judging,
    )
    if evolve is not None:
        from selfinstruct.cli.enrich import evolve_job

        evolving = evolve_job(
            llm, config, pool, evolve, None, None, prompts, None, not quiet, seeds
        )
        return run_evolving_cmd(job, evolving, log_file)
    with Log(log_file, quiet) as log:
        report = run_pipeline(job)
        if report.nothing_to_do:
            return log.echo(f"Nothing to do: {pool} is at its target of {report.target}.")
        rows = run_rows(report)
        at = next(k for k, (name, _) in enumerate(rows) if name == "elapsed")
        rows[at:at] = curate_rows(report.curate)  # after the dataset, before the costs
        log.finish("run", rows, report.stopped, report.incomplete, report.interrupted)


def run_evolving_cmd(job: RunJob, evolving: EvolveJob, log_file: Path | None) -> None:
    """`run --evolve`: the run's summary, evolve's, then the second pass's."""
    from selfinstruct.cli.enrich import evolve_rows, left
    from selfinstruct.pipeline.evolving import run_evolving

    quiet = not job.progress
    with Log(log_file, quiet) as log:
        report = run_evolving(job, evolving)
        first, ev, after = report.run, report.evolve, report.after
        if ev is None:
            stopped, incomplete, interrupted = first.stopped, first.incomplete, first.interrupted
            return log.finish("run", run_rows(first), stopped, incomplete, interrupted)
        if not first.nothing_to_do:
            log.echo("run: first pass\n" + table(run_rows(first)))
        if after is None:
            return log.finish("evolve", evolve_rows(ev), ev.stopped, left(ev), ev.interrupted)
        log.echo("evolve:\n" + table(evolve_rows(ev)))
        if after.nothing_to_do:
            return log.echo(f"Nothing to do: {job.pool.root} is at its target of {after.target}.")
        log.finish("run", run_rows(after), after.stopped, after.incomplete, after.interrupted)


@handle_errors
def status_cmd(
    pool: PoolOpt = Path("data"),
    as_json: JsonOpt = False,
) -> None:
    """Progress per stage, failures, tokens and cost, the last run, and who holds the lock."""
    from selfinstruct import pool_status

    status = pool_status(open_pool(pool))
    if as_json:
        return typer.echo(json.dumps(status, indent=2, default=str))
    typer.echo(table(status_rows(status)))


def version_cmd() -> None:
    """Print the version."""
    typer.echo(f"selfinstruct {__version__}")
