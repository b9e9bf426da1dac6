"""The enrichment commands: evolve (rewrite instructions) and mix (combine datasets)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from selfinstruct.cli.base import (
    NONE,
    BatchOpt,
    PoolOpt,
    ProgressOpt,
    PromptsOpt,
    finish,
    handle_errors,
    llm_command,
    open_pool,
)
from selfinstruct.cli.summary import reason_rows, usage_rows, warning_rows
from selfinstruct.config import EvolveSettings, FileConfig, GenerateSettings, Settings

if TYPE_CHECKING:
    from selfinstruct.outputs.mix import SourceReport
    from selfinstruct.stages.evolve import EvolveJob, EvolveReport

OpsOpt = Annotated[
    str | None,
    typer.Option(
        help="Operations, comma-separated: constraints, deepen, concretize, breadth, harder.",
        show_default="all five",
    ),
]
RoundsOpt = Annotated[
    int | None,
    typer.Option(
        min=1, max=10, help="Rounds; each evolves the last round's output.", show_default="1"
    ),
]
SampleOpt = Annotated[
    float | None,
    typer.Option(
        min=0.0,
        max=1.0,
        help="Share of the pool's instructions to evolve in round 1.",
        show_default="1.0",
    ),
]
EvolveSeedOpt = Annotated[
    int | None, typer.Option(help="Seed of the share and of each operation.", show_default="0")
]


def evolve_job(
    llm: Settings,
    config: FileConfig,
    pool: Path,
    ops: str | None,
    rounds: int | None,
    sample: float | None,
    prompts: Path | None,
    seed: int | None,
    progress: bool,
    seeds: Path | None = None,
) -> EvolveJob:
    """The job of `evolve` and `run --evolve`: flags over the [evolve] table over defaults."""
    from selfinstruct.method.evolve import parse_ops
    from selfinstruct.stages.evolve import EvolveJob

    flags = {"ops": None if ops is None else list(parse_ops(ops)), "rounds": rounds}
    stage = config.settings(EvolveSettings, "evolve", {**flags, "sample": sample, "seed": seed})
    stage.ops = list(parse_ops(",".join(stage.ops)))  # the config file's names are checked too
    return EvolveJob(
        pool=open_pool(pool, seeds),
        llm=llm,
        stage=stage,
        generate=config.settings(GenerateSettings, "generate"),
        prompts=prompts,
        progress=progress,
    )


@llm_command
def evolve_cmd(
    llm: Settings,
    config: FileConfig,
    pool: PoolOpt = Path("data"),
    ops: OpsOpt = None,
    rounds: RoundsOpt = None,
    sample: SampleOpt = None,
    seed: EvolveSeedOpt = None,
    prompts: PromptsOpt = None,
    progress: ProgressOpt = True,
    batch: BatchOpt = False,
) -> None:
    """Rewrite pool instructions into more complex, concrete, harder or rarer new ones."""
    from selfinstruct.stages.evolve import evolve

    job = evolve_job(llm, config, pool, ops, rounds, sample, prompts, seed, progress)
    if batch:
        from selfinstruct.cli.batch import batch_job, print_batch
        from selfinstruct.pipeline.batch import advance

        plan = batch_job(llm, config, pool, ("evolve",), prompts)
        plan.evolve = job
        return print_batch("evolve", advance(plan))
    report = evolve(job)
    finish("evolve", evolve_rows(report), report.stopped, left(report), report.interrupted)


def left(report: EvolveReport) -> str | None:
    return f"{report.failed} not evolved (requests failed)" if report.failed else None


def evolve_rows(report: EvolveReport) -> list[tuple[str, str]]:
    accepted = sum(report.accepted.values())
    rows = [
        ("operations", ", ".join(report.ops)),
        ("this run", f"{report.asked} instructions ({report.done_before} done by earlier runs)"),
        ("accepted", str(accepted)),
        *[(f"  {op}", str(report.accepted[op])) for op in report.ops if report.accepted[op]],
        ("rejected", str(sum(report.rejected.values()))),
        *reason_rows(report.rejected),
    ]
    if len(report.per_round) > 1:
        rounds = ", ".join(f"{n} in round {r}" for r, n in sorted(report.per_round.items()))
        rows.append(("rounds", rounds))
    if report.in_open_batches:
        rows.append(("in open batches", str(report.in_open_batches)))
    rows.append(("elapsed", f"{report.elapsed:.1f}s"))
    return rows + usage_rows(report.usage) + warning_rows(report.warnings)


def source_text(s: SourceReport) -> str:
    """What one source gave and what it lost."""
    lost = [f"{s.duplicates} near-duplicates dropped"]
    if s.short:
        lost.append(f"{s.short} short of its count")
    if s.multi_turn:
        lost.append(f"{s.multi_turn} multi-turn cut to their first exchange")
    return f"{s.kept} of {s.wanted} wanted ({s.available} in the file; {', '.join(lost)})"


@handle_errors
def mix_cmd(
    sources: Annotated[
        list[str],
        typer.Argument(
            help="FILE, NAME=FILE, FILE:SHARE or NAME=FILE:COUNT (a share below 1, or a count).",
            show_default=False,
        ),
    ],
    out: Annotated[Path, typer.Option(help="The mixed dataset (.jsonl or .json).")],
    total: Annotated[
        int | None,
        typer.Option(min=1, help="Records in the mix (with shares).", show_default=NONE),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of each source's sample.")] = 0,
    threshold: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Drop an instruction above this ROUGE-L (1: off)."),
    ] = 0.7,
) -> None:
    """Combine datasets (ours, Alpaca-style, chat format) into one, by shares or counts."""
    from selfinstruct.outputs.mix import MixJob, mix, parse_source

    report = mix(MixJob([parse_source(s) for s in sources], out, total, seed, threshold))
    rows = [(s.name, source_text(s)) for s in report.sources]
    rows += [("written", f"{report.written} -> {out}"), ("elapsed", f"{report.elapsed:.1f}s")]
    finish("mix", rows, None)
