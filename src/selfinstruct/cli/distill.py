"""`selfinstruct distill`: a teacher model's outputs for the pool's instances or any file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from selfinstruct.cli.base import NONE, BatchOpt, PoolOpt, ProgressOpt, finish, llm_command
from selfinstruct.cli.batch import batch_job
from selfinstruct.cli.summary import batch_rows, usage_rows
from selfinstruct.config import FileConfig, Settings
from selfinstruct.errors import ConfigError

if TYPE_CHECKING:
    from selfinstruct.stages.base import StageReport


@llm_command
def distill_cmd(
    llm: Settings,
    config: FileConfig,
    src: Annotated[
        Path | None,
        typer.Argument(
            help="A dataset file (JSON list or JSONL) instead of the pool.", show_default=NONE
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="With FILE: the records with the teacher's outputs.", show_default=NONE),
    ] = None,
    pool: PoolOpt = Path("data"),
    system: Annotated[
        str | None, typer.Option(help="A system prompt for the teacher.", show_default=NONE)
    ] = None,
    max_tokens: Annotated[int, typer.Option(min=16, help="Longest answer, in tokens.")] = 2048,
    temperature: Annotated[
        float | None, typer.Option(min=0, help="Sampling temperature.", show_default="the server's")
    ] = None,
    dataset: Annotated[
        bool,
        typer.Option(
            "--dataset",
            help="Only POOL/dataset.jsonl's rows (what stage 4 kept).",
            show_default="off",
        ),
    ] = False,
    progress: ProgressOpt = True,
    batch: BatchOpt = False,
) -> None:
    """Answer every instance with a teacher (--model): `filter --outputs distilled` uses them."""
    from selfinstruct import DistillSettings

    settings = DistillSettings(system, max_tokens, temperature, dataset_only=dataset)
    if src is not None:
        return distill_a_file(src, out, llm, settings, progress, batch)
    from selfinstruct.cli.base import open_pool

    if out is not None:
        raise ConfigError(
            "--out goes with a dataset FILE; on a pool the answers go to POOL/distilled.jsonl"
        )
    if batch:
        from selfinstruct.pipeline.distill_batch import distill_batch

        report = distill_batch(batch_job(llm, config, pool, ("distill",), None), settings)
        if report.idle:
            return typer.echo("Nothing to do: no batch is open and every instance has an answer.")
        answered = report.counts["answered"]
        return finish("distill", [("answered", str(answered)), *batch_rows(report)], report.stopped)
    from selfinstruct import DistillJob, distill

    job = DistillJob(open_pool(pool), llm, settings, None, progress)
    print_distill(distill(job, settings), f"{pool / 'distilled.jsonl'}")


def distill_a_file(
    src: Path, out: Path | None, llm: Settings, settings: object, progress: bool, batch: bool
) -> None:
    from selfinstruct.outputs.distill_file import distill_file
    from selfinstruct.stages.distill import DistillSettings

    if out is None:
        raise ConfigError(f"pass --out FILE: where the records of {src} go with the new outputs")
    if batch:
        raise ConfigError(
            "distill --batch works on a pool: run it without FILE (or without --batch)"
        )
    assert isinstance(settings, DistillSettings)
    report, written = distill_file(src, out, llm, settings, progress)
    rows = [
        ("records", f"{written.records} in {src}"),
        ("written", f"{written.written} with the teacher's output -> {out}"),
    ]
    if written.missing or written.cut:
        rows.append(
            ("left out", f"{written.missing} without an answer, {written.cut} cut at --max-tokens")
        )
    print_distill(report, str(written.work / "distilled.jsonl"), rows)


def print_distill(
    report: StageReport, where: str, extra: list[tuple[str, str]] | None = None
) -> None:
    if report.pending == 0 and not extra:
        typer.echo(
            f"Nothing to do: the teacher has answered all {report.done_before} questions ({where})."
        )
        return
    rows = [
        ("this run", f"{report.pending} questions ({report.done_before} answered by earlier runs)"),
        ("answered", f"{report.counts['answered']} -> {where}"),
        ("cut", f"{report.counts['cut']} (stopped at --max-tokens)"),
        ("failed", str(report.counts["failed"])),
        ("elapsed", f"{report.elapsed:.1f}s"),
        *(extra or []),
    ]
    incomplete = report.left("without an answer")
    finish(
        "distill", rows + usage_rows(report.usage), report.stopped, incomplete, report.interrupted
    )
