"""The `selfinstruct` command: a thin client of the library (parse, call a stage, report)."""

from __future__ import annotations

import functools
import inspect
import json
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from selfinstruct import __version__
from selfinstruct.config import (
    ClassifySettings,
    FileConfig,
    FilterSettings,
    GenerateSettings,
    InstancesSettings,
    Settings,
    read_config_file,
    resolve,
)
from selfinstruct.errors import ConfigError, SelfInstructError
from selfinstruct.pool import Pool, load_seeds
from selfinstruct.prompts import load_template
from selfinstruct.stages.base import StageJob, StageReport
from selfinstruct.stages.batch import STAGES, BatchJob, BatchReport, advance, collect, submit
from selfinstruct.stages.batch_offline import export, import_results
from selfinstruct.stages.batch_remote import batch_status
from selfinstruct.stages.classify import classify
from selfinstruct.stages.dedup import dedup_file
from selfinstruct.stages.filter import FilterJob, filter_pool
from selfinstruct.stages.generate import GenerateJob, GenerateReport, generate, sample_prompt
from selfinstruct.stages.instances import instances
from selfinstruct.stages.run import RunJob, run_pipeline
from selfinstruct.stages.status import pool_status
from selfinstruct.summary import (
    Log,
    batch_rows,
    columns,
    parked_row,
    reason_rows,
    run_rows,
    status_rows,
    table,
    usage_rows,
)

app = typer.Typer(
    help="Turn a few seed tasks into an instruction-tuning dataset (Self-Instruct).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
F = TypeVar("F", bound=Callable[..., Any])
PANEL = "Model and API"


def _opt(help: str, **kwargs: Any) -> Any:
    return typer.Option(help=help, rich_help_panel=PANEL, **kwargs)


ConfigOpt = Annotated[Path | None, typer.Option(help="Config file [default: ./selfinstruct.toml].")]

# The options of every command that calls a model, added by @llm_command.
LLM_OPTIONS: dict[str, Any] = {
    "model": Annotated[
        str | None, _opt("Model name [default: gpt-4o-mini].", envvar="SELFINSTRUCT_MODEL")
    ],
    "base_url": Annotated[
        str | None,
        _opt("OpenAI-compatible server, e.g. http://localhost:8000/v1.", envvar="OPENAI_BASE_URL"),
    ],
    "api_key": Annotated[str | None, _opt("API key.", envvar="OPENAI_API_KEY", show_envvar=True)],
    "api": Annotated[
        str | None,
        _opt("chat, or completions for base models [default: chat].", envvar="SELFINSTRUCT_API"),
    ],
    "concurrency": Annotated[int | None, _opt("Requests in flight [default: 8].")],
    "timeout": Annotated[float | None, _opt("Request timeout in seconds [default: 60].")],
    "max_retries": Annotated[int | None, _opt("Retries per request [default: 6].")],
    "price_in": Annotated[float | None, _opt("USD per million prompt tokens.")],
    "price_out": Annotated[float | None, _opt("USD per million completion tokens.")],
    "max_requests": Annotated[int | None, _opt("Stop after this many paid requests.")],
    "max_cost": Annotated[float | None, _opt("Stop when the cost reaches this many USD.")],
    "config": Annotated[
        Path | None, typer.Option(help="Config file [default: ./selfinstruct.toml].")
    ],
}
PoolOpt = Annotated[
    Path, typer.Option("--pool", help="Pool directory.", envvar="SELFINSTRUCT_POOL")
]
PromptsOpt = Annotated[Path | None, typer.Option(help="Directory of prompt templates to use.")]
ProgressOpt = Annotated[bool, typer.Option(help="Show a progress bar.")]
SeedsOpt = Annotated[
    Path | None, typer.Option(help="Seed tasks (JSONL); needed on a pool's first run.")
]
TargetOpt = Annotated[
    int, typer.Option("--num-instructions", "-n", min=1, help="Target size of the machine pool.")
]
BatchOpt = Annotated[
    bool, typer.Option("--batch", help="Batch API: collect what finished, submit what is next.")
]
SeedOpt = Annotated[int | None, typer.Option(help="Random seed for prompt sampling.")]


def handle_errors(fn: F) -> F:
    """The one error boundary: SelfInstructError -> `Error: ...` on stderr and its exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SelfInstructError as e:
            if os.environ.get("SELFINSTRUCT_RAISE_ERRORS"):
                raise
            typer.echo(f"Error: {e}", err=True)
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("Interrupted; the pool is saved - re-run the command to continue.", err=True)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def llm_command(fn: F) -> F:
    """Add the model options to a command; it receives them resolved as `llm` and `config`."""
    signature = inspect.signature(fn, eval_str=True)
    own = [p for p in signature.parameters.values() if p.name not in ("llm", "config")]
    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=kind, default=None)
        for name, kind in LLM_OPTIONS.items()
    ]

    @functools.wraps(fn)
    def wrapper(**kwargs: Any) -> Any:
        flags = {name: kwargs.pop(name) for name in LLM_OPTIONS}
        config = read_config_file(flags.pop("config"))
        source = str(flags.get("config") or "selfinstruct.toml")
        return fn(**kwargs, llm=resolve(Settings, flags, config.llm, source), config=config)

    wrapper.__signature__ = signature.replace(parameters=own + extra)  # type: ignore[attr-defined]
    return handle_errors(wrapper)  # type: ignore[return-value]


@app.command("generate")
@llm_command
def generate_cmd(
    llm: Settings,
    config: FileConfig,
    seeds: SeedsOpt = None,
    num_instructions: TargetOpt = 100,
    pool: PoolOpt = Path("data"),
    seed: Annotated[int | None, typer.Option(help="Random seed for prompt sampling.")] = None,
    prompts: PromptsOpt = None,
    dry_run: Annotated[
        bool, typer.Option(help="Show settings and a prompt; send nothing.")
    ] = False,
    progress: ProgressOpt = True,
    batch: BatchOpt = False,
) -> None:
    """Stage 1: bootstrap new instructions from the seeds until the pool holds -n of them."""
    job = GenerateJob(
        pool=Pool(pool), seeds=seeds, target=num_instructions, llm=llm, prompts=prompts,
        stage=resolve(GenerateSettings, {}, config.generate, "[generate]"), progress=progress,
        seed=random.randrange(2**31) if seed is None else seed,
    )  # fmt: skip
    if dry_run:
        return show_dry_run(job)
    if batch:
        plan = batch_job(llm, config, pool, ("generate",), prompts, job.seed, seeds, job.target)
        return print_batch("generate", advance(plan))
    print_generate(generate(job), job)


@app.command("classify")
@llm_command
def classify_cmd(
    llm: Settings, config: FileConfig, pool: PoolOpt = Path("data"), prompts: PromptsOpt = None,
    progress: ProgressOpt = True, batch: BatchOpt = False,
) -> None:  # fmt: skip
    """Stage 2: ask whether each machine instruction is a classification task."""
    if batch:
        return print_batch(
            "classify", advance(batch_job(llm, config, pool, ("classify",), prompts))
        )
    stage = resolve(ClassifySettings, {}, config.classify, "[classify]")
    report = classify(StageJob(Pool(pool), llm, stage, prompts, progress))
    print_stage("classify", report, ["yes", "no", "unparsed", "retried", "failed"])


@app.command("instances")
@llm_command
def instances_cmd(
    llm: Settings,
    config: FileConfig,
    pool: PoolOpt = Path("data"),
    max_instances: Annotated[
        int | None, typer.Option(help="Instances per task [default: 5].")
    ] = None,
    prompts: PromptsOpt = None,
    progress: ProgressOpt = True,
    batch: BatchOpt = False,
) -> None:
    """Stage 3: write inputs and outputs (output-first for classification tasks)."""
    flags = {"max_instances": max_instances}
    stage = resolve(InstancesSettings, flags, config.instances, "[instances]")
    if batch:
        plan = batch_job(llm, config, pool, ("instances",), prompts)
        plan.instances = stage
        return print_batch("instances", advance(plan))
    report = instances(StageJob(Pool(pool), llm, stage, prompts, progress))
    kinds = ["output_first", "input_first", "instances", "no_instances_parsed", "failed"]
    print_stage("instances", report, kinds)


@app.command("filter")
@handle_errors
def filter_cmd(
    pool: PoolOpt = Path("data"),
    out: Annotated[
        Path | None, typer.Option(help="Dataset file [default: POOL/dataset.jsonl].")
    ] = None,
    include_seeds: Annotated[bool, typer.Option(help="Add the seed tasks' instances.")] = False,
    rouge_threshold: Annotated[
        float | None, typer.Option(help="Drop above this ROUGE-L [default: 0.7].")
    ] = None,
    max_instances: Annotated[
        int | None, typer.Option(help="Instances per task [default: 5].")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Stage 4: drop near-duplicates and bad instances; write the final dataset."""
    flags = {"rouge_threshold": rouge_threshold, "max_instances": max_instances}
    settings = resolve(FilterSettings, flags, read_config_file(config).filter, "[filter]")
    report = filter_pool(FilterJob(Pool(pool), settings, out, include_seeds))
    rows = [
        ("instructions", f"{report.tasks} in the pool, {report.tasks_kept} kept with instances"),
        (
            "dataset",
            f"{report.instances_kept} instances + {report.seeds} from seeds -> {report.out}",
        ),
        ("dropped", f"{sum(report.dropped.values())} -> {report.rejects}"),
        *reason_rows(report.dropped),
    ]
    finish("filter", rows, None)


@app.command("dedup")
@handle_errors
def dedup_cmd(
    src: Annotated[
        Path, typer.Argument(help="JSONL file or JSON list of records.", show_default=False)
    ],
    out: Annotated[Path, typer.Option(help="Kept records (a .json name writes a JSON list).")],
    field: Annotated[str, typer.Option(help="The text field to compare.")] = "instruction",
    threshold: Annotated[
        float, typer.Option(min=0, max=1, help="Drop above this ROUGE-L F.")
    ] = 0.7,
    rejected: Annotated[Path | None, typer.Option(help="Write dropped records here.")] = None,
    against: Annotated[Path | None, typer.Option(help="Also compare with this set.")] = None,
) -> None:
    """Drop near-duplicate records (ROUGE-L F > threshold against an earlier kept one)."""
    report = dedup_file(src, out, field, threshold, rejected, against)
    rows = [
        ("records", str(report.total)),
        ("kept", f"{report.kept} -> {out}"),
        ("dropped", str(report.total - report.kept) + (f" -> {rejected}" if rejected else "")),
        ("elapsed", f"{report.elapsed:.2f}s"),
    ]
    finish("dedup", rows, None)


def show_dry_run(job: GenerateJob) -> None:
    template = load_template(f"generate_{job.llm.api}", job.prompts)
    seeds = load_seeds(job.seeds) if job.seeds else []
    resolved = {"settings": job.llm.public(), "generate": job.stage.model_dump(mode="json"),
                "seed": job.seed, "pool": str(job.pool.root), "target": job.target,
                "prompts": {template.name: template.path}}  # fmt: skip
    typer.echo(json.dumps(resolved, indent=2))
    if seeds:
        typer.echo("\nFirst prompt:\n" + sample_prompt(seeds, job.stage, template, job.seed))


def print_generate(report: GenerateReport, job: GenerateJob) -> None:
    if report.accepted == 0 and report.before >= report.target:
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
    finish("generate", rows + usage_rows(report.usage), report.stopped)


def print_stage(stage: str, report: StageReport, keys: list[str]) -> None:
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
    rows = [("pending", str(report.pending))]
    rows += [(key.replace("_", " "), str(report.counts[key])) for key in keys]
    if parked:
        rows.append(parked_row(parked))
    rows += [("elapsed", f"{report.elapsed:.1f}s")]
    finish(stage, rows + usage_rows(report.usage), report.stopped)


def finish(stage: str, rows: list[tuple[str, str]], stopped: str | None) -> None:
    typer.echo(f"{stage}: " + ("stopped early" if stopped else "done"))
    typer.echo(table(rows))
    if stopped:
        typer.echo(f"Stopped: {stopped}; the pool is saved - re-run to continue.", err=True)
        raise typer.Exit(3)


@app.command("run")
@llm_command
def run_cmd(
    llm: Settings,
    config: FileConfig,
    seeds: SeedsOpt = None,
    num_instructions: Annotated[
        int | None, typer.Option("--num-instructions", "-n", min=1, help="Set the target.")
    ] = None,
    add: Annotated[int | None, typer.Option(min=1, help="Grow the saved target by K.")] = None,
    pool: PoolOpt = Path("data"),
    seed: Annotated[int | None, typer.Option(help="Random seed for prompt sampling.")] = None,
    prompts: PromptsOpt = None,
    log_file: Annotated[
        Path | None, typer.Option(help="Append the summary and errors here.")
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar or summary (errors still).")] = False,
    batch: BatchOpt = False,
) -> None:
    """All four stages toward the target; safe to run from cron (exits 0 when done)."""
    if batch:
        plan = batch_job(llm, config, pool, STAGES, prompts, seed, seeds, num_instructions)
        plan.add, plan.filter = add, resolve(FilterSettings, {}, config.filter, "[filter]")
        return run_batch(plan, log_file, quiet)
    job = RunJob(
        pool=Pool(pool), seeds=seeds, target=num_instructions, add=add, llm=llm, prompts=prompts,
        generate=resolve(GenerateSettings, {}, config.generate, "[generate]"),
        classify=resolve(ClassifySettings, {}, config.classify, "[classify]"),
        instances=resolve(InstancesSettings, {}, config.instances, "[instances]"),
        filter=resolve(FilterSettings, {}, config.filter, "[filter]"),
        seed=random.randrange(2**31) if seed is None else seed, progress=not quiet,
    )  # fmt: skip
    with Log(log_file, quiet) as log:
        report = run_pipeline(job)
        if report.nothing_to_do:
            return log.echo(f"Nothing to do: {pool} is at its target of {report.target}.")
        log.finish("run", run_rows(report), report.stopped)


@app.command("status")
@handle_errors
def status_cmd(
    pool: PoolOpt = Path("data"),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Progress per stage, failures, tokens and cost, the last run, and who holds the lock."""
    status = pool_status(Pool(pool))
    if as_json:
        return typer.echo(json.dumps(status, indent=2, default=str))
    typer.echo(table(status_rows(status)))


@app.command("version")
def version_cmd() -> None:
    """Print the version."""
    typer.echo(f"selfinstruct {__version__}")


batch_app = typer.Typer(
    help="Batch mode: the Batch API at half price, or an offline engine (vllm run-batch).",
    no_args_is_help=True,
)
app.add_typer(batch_app, name="batch")
StageOpt = Annotated[
    str, typer.Option(help="generate, classify, instances, or auto (every stage with work).")
]
BatchTargetOpt = Annotated[
    int | None,
    typer.Option("--num-instructions", "-n", min=1, help="Stage 1's target (else the saved one)."),
]


def batch_job(
    llm: Settings, config: FileConfig, pool: Path, stages: tuple[str, ...], prompts: Path | None,
    seed: int | None = None, seeds: Path | None = None, target: int | None = None,
) -> BatchJob:  # fmt: skip
    return BatchJob(
        pool=Pool(pool), llm=llm, stages=stages, prompts=prompts, seeds=seeds, target=target,
        generate=resolve(GenerateSettings, {}, config.generate, "[generate]"),
        classify=resolve(ClassifySettings, {}, config.classify, "[classify]"),
        instances=resolve(InstancesSettings, {}, config.instances, "[instances]"),
        seed=random.randrange(2**31) if seed is None else seed,
    )  # fmt: skip


def run_batch(job: BatchJob, log_file: Path | None, quiet: bool) -> None:
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
    llm: Settings, config: FileConfig, stage: StageOpt = "auto", pool: PoolOpt = Path("data"),
    num_instructions: BatchTargetOpt = None, seeds: SeedsOpt = None, seed: SeedOpt = None,
    prompts: PromptsOpt = None,
) -> None:  # fmt: skip
    """Upload the requests each stage needs next and create their batches."""
    plan = batch_job(llm, config, pool, stages_of(stage), prompts, seed, seeds, num_instructions)
    print_batch("batch submit", submit(plan))


@batch_app.command("collect")
@llm_command
def batch_collect_cmd(
    llm: Settings, config: FileConfig, pool: PoolOpt = Path("data"), prompts: PromptsOpt = None
) -> None:
    """Download finished batches and write their results to the pool."""
    print_batch("batch collect", collect(batch_job(llm, config, pool, STAGES, prompts)))


@batch_app.command("status")
@llm_command
def batch_status_cmd(
    llm: Settings,
    config: FileConfig,
    pool: PoolOpt = Path("data"),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Each batch's state and request counts (open ones as the server reports them)."""
    rows = batch_status(Pool(pool), llm)
    if as_json:
        return typer.echo(json.dumps(rows, indent=2))
    typer.echo(columns(rows) if rows else f"No batches in {pool}.")


@batch_app.command("export")
@llm_command
def batch_export_cmd(
    llm: Settings, config: FileConfig,
    out: Annotated[Path, typer.Option(help="Requests file (Batch API JSONL) for vllm run-batch.")],
    stage: StageOpt = "auto", pool: PoolOpt = Path("data"), num_instructions: BatchTargetOpt = None,
    seeds: SeedsOpt = None, seed: SeedOpt = None, prompts: PromptsOpt = None,
) -> None:  # fmt: skip
    """Write the next requests for an offline engine instead of uploading them."""
    plan = batch_job(llm, config, pool, stages_of(stage), prompts, seed, seeds, num_instructions)
    print_batch("batch export", export(plan, out))


@batch_app.command("import")
@llm_command
def batch_import_cmd(
    llm: Settings, config: FileConfig,
    results: Annotated[Path, typer.Argument(help="Batch API output JSONL (vllm run-batch -o).")],
    pool: PoolOpt = Path("data"), prompts: PromptsOpt = None,
) -> None:  # fmt: skip
    """Write the results of exported requests to the pool."""
    plan = batch_job(llm, config, pool, STAGES, prompts)
    print_batch("batch import", import_results(plan, results))


# --- data commands (stats, export, report) are registered below this line ---
@app.command("stats")
@handle_errors
def stats_cmd(
    pool: PoolOpt = Path("data"),
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """The paper's dataset statistics for the pool and the final dataset."""
    from selfinstruct.stats import pool_stats, render_text

    stats = pool_stats(Pool(pool))
    typer.echo(stats.model_dump_json(indent=2) if as_json else render_text(stats))


@app.command("export")
@handle_errors
def export_cmd(
    fmt: Annotated[
        str, typer.Option("--format", help="alpaca, openai, sharegpt or prompt-completion.")
    ],
    out: Annotated[Path, typer.Option(help="Output file (one per split with --split).")],
    pool: PoolOpt = Path("data"),
    include_seeds: Annotated[bool, typer.Option(help="Add the seed tasks' instances.")] = False,
    shuffle: Annotated[bool, typer.Option(help="Shuffle the records (with --seed).")] = False,
    seed: Annotated[int, typer.Option(help="Seed for --shuffle and --varied-templates.")] = 0,
    split: Annotated[
        str | None, typer.Option(help="e.g. train=0.95,validation=0.05 (sums to 1).")
    ] = None,
    system: Annotated[str | None, typer.Option(help="System message (openai).")] = None,
    varied_templates: Annotated[
        bool, typer.Option(help="Vary the prompt wording per record (prompt-completion).")
    ] = False,
) -> None:
    """Write the final dataset in a fine-tuning format."""
    from selfinstruct.export import ExportJob, export

    job = ExportJob(
        Pool(pool), fmt, out, include_seeds=include_seeds, shuffle=shuffle, seed=seed,
        split=split, system=system, varied_templates=varied_templates,
    )  # fmt: skip
    report = export(job)
    source = f"{report.from_dataset} from the dataset + {report.from_seeds} seed instances"
    rows = [("records", f"{report.from_dataset + report.from_seeds} ({source})"), ("format", fmt)]
    rows += [(name or "written", f"{n} -> {path}") for name, n, path in report.files]
    finish("export", rows, None)


@app.command("report")
@handle_errors
def report_cmd(
    out: Annotated[Path, typer.Option(help="The HTML page to write.")] = Path("report.html"),
    pool: PoolOpt = Path("data"),
) -> None:
    """Write a self-contained HTML report: stats, charts and sample records."""
    from selfinstruct.report import write_report

    result = write_report(Pool(pool), out)
    samples = f"{result.kept} kept, {result.rejected} rejected"
    finish("report", [("page", str(result.out)), ("samples", samples)], None)


# --- end of data commands ---


def main() -> None:
    app(prog_name="selfinstruct")
