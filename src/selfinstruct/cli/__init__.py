"""The `selfinstruct` command: a thin client of the library (parse, call a stage, report)."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from selfinstruct.cli import (
    backtranslate,
    batch,
    data,
    distill,
    enrich,
    hub,
    judge,
    preferences,
    stages,
)
from selfinstruct.cli.base import OFF, app

__all__ = ["app", "main"]


def show_version(value: bool) -> None:
    if value:
        stages.version_cmd()
        raise typer.Exit()


@app.callback()
def options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the version and exit.",
            callback=show_version,
            is_eager=True,
            show_default=OFF,
        ),
    ] = False,
) -> None:
    """The options before any command."""
    show_notices()


class _Notices(logging.Handler):
    """The library's notices (a repaired torn line, a signal received) as plain stderr lines,
    on whatever stderr is when they come (CliRunner swaps it per invocation)."""

    def emit(self, record: logging.LogRecord) -> None:
        typer.echo(self.format(record), err=True)


def show_notices() -> None:
    logger = logging.getLogger("selfinstruct")
    if not any(isinstance(h, _Notices) for h in logger.handlers):
        logger.addHandler(_Notices(logging.WARNING))
        logger.propagate = False


# The commands, in the order --help lists them.
app.command("generate")(stages.generate_cmd)
app.command("classify")(stages.classify_cmd)
app.command("instances")(stages.instances_cmd)
app.command("filter")(stages.filter_cmd)
app.command("dedup")(stages.dedup_cmd)
app.command("backtranslate")(backtranslate.backtranslate_cmd)
app.command("curate")(judge.curate_cmd)
app.command("review")(judge.review_cmd)
app.command("preferences")(preferences.preferences_cmd)
app.command("run")(stages.run_cmd)
app.command("distill")(distill.distill_cmd)
app.command("status")(stages.status_cmd)
app.command("version")(stages.version_cmd)
app.add_typer(batch.batch_app, name="batch")
app.command("stats")(data.stats_cmd)
app.command("export")(data.export_cmd)
app.command("push")(hub.push_cmd)
app.command("report")(data.report_cmd)
app.command("evolve")(enrich.evolve_cmd)
app.command("mix")(enrich.mix_cmd)


def main() -> None:
    app(prog_name="selfinstruct")
