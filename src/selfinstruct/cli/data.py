"""The data commands: stats, export, report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from selfinstruct.cli.base import (
    NONE,
    OFF,
    ExportSeedOpt,
    IncludeSeedsOpt,
    PoolOpt,
    ShuffleOpt,
    SystemOpt,
    VariedTemplatesOpt,
    finish,
    finish_output,
    handle_errors,
    open_pool,
)
from selfinstruct.cli.hub import PrivateOpt, push_export
from selfinstruct.errors import ConfigError


@handle_errors
def stats_cmd(
    pool: PoolOpt = Path("data"),
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON document.", show_default=OFF)
    ] = False,
) -> None:
    """The paper's dataset statistics for the pool and the final dataset."""
    from selfinstruct.outputs.stats import pool_stats, render_text

    stats = pool_stats(open_pool(pool))
    typer.echo(stats.model_dump_json(indent=2) if as_json else render_text(stats))


@handle_errors
def export_cmd(
    fmt: Annotated[
        str,
        typer.Option(
            "--format", help="alpaca, openai, sharegpt, prompt-completion, dpo or dpo-chat."
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            help="Output file (one per split with --split; .parquet: Parquet; - is stdout).",
            show_default=NONE,
        ),
    ] = None,
    pool: PoolOpt = Path("data"),
    include_seeds: IncludeSeedsOpt = False,
    shuffle: ShuffleOpt = False,
    seed: ExportSeedOpt = 0,
    split: Annotated[
        str | None,
        typer.Option(help="e.g. train=0.95,validation=0.05 (sums to 1).", show_default=NONE),
    ] = None,
    system: SystemOpt = None,
    varied_templates: VariedTemplatesOpt = False,
    parquet: Annotated[
        bool, typer.Option(help="Write Parquet whatever --out's suffix.", show_default=OFF)
    ] = False,
    push_to_hub: Annotated[
        str | None,
        typer.Option(help="Also upload to this Hub dataset repo (see push).", show_default=NONE),
    ] = None,
    private: PrivateOpt = False,
) -> None:
    """Write the final dataset in a fine-tuning format."""
    from selfinstruct.outputs.export import ExportJob, export

    if out is None and push_to_hub is None:
        raise ConfigError("give --out FILE (or - for stdout), --push-to-hub REPO_ID, or both")
    job = ExportJob(
        open_pool(pool),
        fmt,
        Path(".") if out is None else out,
        include_seeds=include_seeds,
        shuffle=shuffle,
        seed=seed,
        split=split,
        system=system,
        varied_templates=varied_templates,
        parquet=parquet,
    )
    if out is None:
        return push_export(job, str(push_to_hub), private, "other", "en")
    report = export(job)
    source = f"{report.from_dataset} from the dataset + {report.from_seeds} seed instances"
    if report.pairs_of:
        source = f"preference pairs of {report.pairs_of}"
    rows = [("records", f"{report.from_dataset + report.from_seeds} ({source})"), ("format", fmt)]
    rows += [(name or "written", f"{n} -> {path}") for name, n, path in report.files]
    finish_output("export", rows, out)
    if push_to_hub is not None:
        push_export(job, push_to_hub, private, "other", "en")


@handle_errors
def report_cmd(
    out: Annotated[Path, typer.Option(help="The HTML page to write.")] = Path("report.html"),
    pool: PoolOpt = Path("data"),
) -> None:
    """Write a self-contained HTML report: stats, charts and sample records."""
    from selfinstruct.outputs.report import write_report

    result = write_report(open_pool(pool), out)
    samples = f"{result.kept} kept, {result.rejected} rejected"
    finish("report", [("page", str(result.out)), ("samples", samples)], None)
