"""The `selfinstruct` command: a thin client of the library (parse, call a stage, report)."""

from __future__ import annotations

import functools
import json
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from selfinstruct import __version__
from selfinstruct.config import GenerateSettings, Settings, read_config_file, resolve
from selfinstruct.errors import SelfInstructError
from selfinstruct.pool import Pool, load_seeds
from selfinstruct.prompts import load_template
from selfinstruct.stages.generate import GenerateJob, GenerateReport, generate, sample_prompt
from selfinstruct.summary import reason_rows, table, usage_rows

app = typer.Typer(
    help="Turn a few seed tasks into an instruction-tuning dataset (Self-Instruct).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
F = TypeVar("F", bound=Callable[..., Any])
LLM_PANEL = "Model and API"

PoolOpt = Annotated[
    Path, typer.Option("--pool", help="Pool directory.", envvar="SELFINSTRUCT_POOL")
]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="Config file [default: ./selfinstruct.toml].")
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        help="Model name [default: gpt-4o-mini].",
        envvar="SELFINSTRUCT_MODEL",
        rich_help_panel=LLM_PANEL,
    ),
]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        help="OpenAI-compatible server, e.g. http://localhost:8000/v1.",
        envvar="OPENAI_BASE_URL", rich_help_panel=LLM_PANEL,
    ),
]  # fmt: skip
ApiKeyOpt = Annotated[
    str | None,
    typer.Option(
        help="API key.", envvar="OPENAI_API_KEY", show_envvar=True, rich_help_panel=LLM_PANEL
    ),
]
ApiOpt = Annotated[
    str | None,
    typer.Option(
        help="chat or completions (base models) [default: chat].",
        envvar="SELFINSTRUCT_API",
        rich_help_panel=LLM_PANEL,
    ),
]
ConcurrencyOpt = Annotated[
    int | None, typer.Option(help="Requests in flight [default: 8].", rich_help_panel=LLM_PANEL)
]
TimeoutOpt = Annotated[
    float | None,
    typer.Option(help="Request timeout, seconds [default: 60].", rich_help_panel=LLM_PANEL),
]
RetriesOpt = Annotated[
    int | None, typer.Option(help="Retries per request [default: 6].", rich_help_panel=LLM_PANEL)
]
PriceInOpt = Annotated[
    float | None, typer.Option(help="USD per 1M prompt tokens.", rich_help_panel=LLM_PANEL)
]
PriceOutOpt = Annotated[
    float | None, typer.Option(help="USD per 1M completion tokens.", rich_help_panel=LLM_PANEL)
]
MaxRequestsOpt = Annotated[
    int | None, typer.Option(help="Stop after this many paid requests.", rich_help_panel=LLM_PANEL)
]
MaxCostOpt = Annotated[
    float | None,
    typer.Option(help="Stop when the cost reaches this many USD.", rich_help_panel=LLM_PANEL),
]


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


def llm_settings(config: Path | None, **flags: Any) -> tuple[Settings, dict[str, Any]]:
    """Resolve the model settings; also return the config file's stage tables."""
    file = read_config_file(config)
    settings = resolve(Settings, flags, file.llm, str(config or "selfinstruct.toml"))
    return settings, {"generate": file.generate}


@app.command("generate")
@handle_errors
def generate_cmd(
    seeds: Annotated[
        Path | None, typer.Option(help="Seed tasks (JSONL); needed on a pool's first run.")
    ] = None,
    num_instructions: Annotated[
        int,
        typer.Option("--num-instructions", "-n", min=1, help="Target size of the machine pool."),
    ] = 100,
    pool: PoolOpt = Path("data"),
    seed: Annotated[int | None, typer.Option(help="Random seed for prompt sampling.")] = None,
    prompts: Annotated[
        Path | None, typer.Option(help="Directory of prompt templates to use.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option(help="Show the settings and a prompt; send nothing.")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    config: ConfigOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    api: ApiOpt = None,
    concurrency: ConcurrencyOpt = None,
    timeout: TimeoutOpt = None,
    max_retries: RetriesOpt = None,
    price_in: PriceInOpt = None,
    price_out: PriceOutOpt = None,
    max_requests: MaxRequestsOpt = None,
    max_cost: MaxCostOpt = None,
) -> None:
    """Stage 1: bootstrap new instructions from the seeds until the pool holds -n of them."""
    settings, tables = llm_settings(
        config, model=model, base_url=base_url, api_key=api_key, api=api, concurrency=concurrency,
        timeout=timeout, max_retries=max_retries, price_in=price_in, price_out=price_out,
        max_requests=max_requests, max_cost=max_cost,
    )  # fmt: skip
    stage = resolve(GenerateSettings, {}, tables["generate"], "[generate]")
    job = GenerateJob(
        pool=Pool(pool), seeds=seeds, target=num_instructions, llm=settings, stage=stage,
        prompts=prompts, seed=random.randrange(2**31) if seed is None else seed, progress=progress,
    )  # fmt: skip
    if dry_run:
        return show_dry_run(job)
    print_generate(generate(job), job)


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
    typer.echo("generate: " + ("stopped early" if report.stopped else "done"))
    typer.echo(table(rows + usage_rows(report.usage)))
    if report.stopped:
        typer.echo(f"Stopped: {report.stopped}; the pool is saved - re-run to continue.", err=True)
        raise typer.Exit(3)


@app.command("version")
def version_cmd() -> None:
    """Print the version."""
    typer.echo(f"selfinstruct {__version__}")


def main() -> None:
    app(prog_name="selfinstruct")


if __name__ == "__main__":  # pragma: no cover
    main()
