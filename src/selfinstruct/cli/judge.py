"""The judge's commands: curate (1-5 scores for every instance) and review (the paper's
quality table); their options choose the judge (docs/judge.md)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from selfinstruct.cli.base import (
    NONE,
    PANEL,
    BatchOpt,
    PoolOpt,
    ProgressOpt,
    PromptsOpt,
    finish,
    llm_command,
    open_pool,
)
from selfinstruct.cli.summary import table, usage_rows, warning_rows
from selfinstruct.config import FileConfig, JudgeSettings, Settings

if TYPE_CHECKING:
    from selfinstruct.stages.curate import CurateJob, CurateReport

JUDGE = "the generator's"
JudgeModelOpt = Annotated[
    str | None,
    typer.Option(help="The judge's model.", show_default=JUDGE, rich_help_panel=PANEL),
]
JudgeBaseUrlOpt = Annotated[
    str | None,
    typer.Option(help="The judge's server.", show_default=JUDGE, rich_help_panel=PANEL),
]
JudgeApiKeyOpt = Annotated[
    str | None,
    typer.Option(
        help="The judge's API key.",
        show_default="--api-key's on the same server",
        envvar="SELFINSTRUCT_JUDGE_API_KEY",
        show_envvar=True,
        rich_help_panel=PANEL,
    ),
]
MinScoreOpt = Annotated[
    int | None,
    typer.Option(min=1, max=5, help="Keep instances scored K or more.", show_default=NONE),
]


def judge_settings(
    config: FileConfig, model: str | None, base_url: str | None, api_key: str | None
) -> JudgeSettings:
    """The `[judge]` table under the --judge-* flags."""
    from selfinstruct.errors import ConfigError

    flags: dict[str, Any] = {"model": model, "base_url": base_url, "api_key": api_key}
    try:
        settings: JudgeSettings = config.settings(JudgeSettings, "judge", flags)
    except ConfigError as e:  # a flag's error names the flag as typed: --judge-...
        if str(e).startswith("--"):
            message = str(e)[2:].replace("--base-url", "--judge-base-url")
            raise ConfigError("--judge-" + message) from None
        raise
    return settings


@llm_command
def curate_cmd(
    llm: Settings,
    config: FileConfig,
    src: Annotated[
        Path | None,
        typer.Argument(
            help="A dataset file (Alpaca JSON or JSONL) instead of the pool's instances.",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="With a file: the kept records (a .json name writes a list).", show_default=NONE
        ),
    ] = None,
    min_score: MinScoreOpt = None,
    pool: PoolOpt = Path("data"),
    judge_model: JudgeModelOpt = None,
    judge_base_url: JudgeBaseUrlOpt = None,
    judge_api_key: JudgeApiKeyOpt = None,
    prompts: PromptsOpt = None,
    progress: ProgressOpt = True,
    batch: BatchOpt = False,
) -> None:
    """Score every instance 1-5 with an LLM judge; then `filter --min-score K` keeps the best."""
    from selfinstruct.errors import ConfigError
    from selfinstruct.pipeline.judge_batch import advance_curate
    from selfinstruct.stages.curate import CurateJob, curate, curate_file
    from selfinstruct.store.pool import Pool

    judge = judge_settings(config, judge_model, judge_base_url, judge_api_key)
    if (src is None) != (out is None):
        raise ConfigError("a dataset file and --out go together: curate FILE --out KEPT")
    if src is None and min_score is not None:
        raise ConfigError("--min-score applies to a file; for the pool, use filter --min-score")
    job = CurateJob(Pool(pool) if src else open_pool(pool), llm, judge, prompts, progress)
    if batch:
        if src is not None:
            raise ConfigError("--batch works on the pool's instances; drop the file (or --batch)")
        return print_curate(advance_curate(job), batch=True)
    if src is not None and out is not None:
        return print_curate(curate_file(job, src, out, min_score), out=out)
    print_curate(curate(job))


def curate_job(
    wanted: bool,
    config: FileConfig,
    pool: Path,
    llm: Settings,
    prompts: Path | None,
    progress: bool,
    *judge: str | None,
) -> CurateJob | None:
    """`run --curate`'s job (None without the flag); the pool is the run's."""
    from selfinstruct.stages.curate import CurateJob
    from selfinstruct.store.pool import Pool

    if not wanted:
        return None
    return CurateJob(Pool(pool), llm, judge_settings(config, *judge), prompts, progress)


def curate_rows(report: CurateReport | None) -> list[tuple[str, str]]:
    """`run --curate`'s rows: the judge, what it scored, the distribution."""
    if report is None:
        return []
    counts = ", ".join(f"{report.counts[k]} {k}" for k in ("judged", "unparsed", "failed"))
    rows = [("judge", report.judge), ("curate", f"{report.pending} instances: {counts}")]
    return rows + score_rows(report.scores)  # its requests, tokens and cost: in run_rows


def print_curate(report: CurateReport, out: Path | None = None, batch: bool = False) -> None:
    if not (report.pending or out or batch):
        typer.echo(f"Nothing to do: all {report.total} instances have scores from {report.judge}.")
        return typer.echo(table(score_rows(report.scores)))
    rows = [("judge", report.judge)]
    rows.append(("this run", f"{report.pending} instances ({report.done_before} scored before)"))
    rows += [(key, str(report.counts[key])) for key in ("judged", "unparsed", "retried", "failed")]
    if batch:
        rows += [(key, str(report.counts[key])) for key in ("submitted", "waiting")]
    rows += score_rows(report.scores)
    if out is not None:
        rows.append(("kept", f"{report.kept} of {report.total} records -> {out}"))
    rows += [("elapsed", f"{report.elapsed:.1f}s")]
    rows += usage_rows(report.usage) + warning_rows(report.warnings)
    failed = report.counts["failed"]
    left = f"{failed} instances unscored (their requests failed)" if failed else None
    finish("curate", rows, report.stopped, left, report.interrupted)


def score_rows(scores: dict[str, dict[str, int]]) -> list[tuple[str, str]]:
    """ "score 4   120 classification, 310 other" for 1..5 and unscored."""
    if not scores:
        return []
    keys = list(next(iter(scores.values())))
    return [
        (
            f"score {key}" if key.isdigit() else key,
            ", ".join(f"{c[key]} {kind}" for kind, c in scores.items()),
        )
        for key in keys
    ]


@llm_command
def review_cmd(
    llm: Settings,
    config: FileConfig,
    dataset: Annotated[
        Path | None,
        typer.Argument(
            help="Dataset to review (Alpaca JSON or JSONL).", show_default="POOL/dataset.jsonl"
        ),
    ] = None,
    compare: Annotated[
        Path | None,
        typer.Option(
            help="A second dataset, reviewed alike, in a column beside.", show_default=NONE
        ),
    ] = None,
    sample: Annotated[
        int, typer.Option("--sample", "-n", min=1, help="Instances to review (the paper: 200).")
    ] = 200,
    seed: Annotated[int, typer.Option(help="Seed of the sample.")] = 0,
    pool: PoolOpt = Path("data"),
    judge_model: JudgeModelOpt = None,
    judge_base_url: JudgeBaseUrlOpt = None,
    judge_api_key: JudgeApiKeyOpt = None,
    prompts: PromptsOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """The paper's quality table by an LLM judge: four questions for a sample of instances."""
    from selfinstruct.stages.review import ReviewJob, review
    from selfinstruct.store.pool import Pool

    judge = judge_settings(config, judge_model, judge_base_url, judge_api_key)
    reviewed = Pool(pool)
    datasets = [dataset or reviewed.dataset] + ([compare] if compare else [])
    job = ReviewJob(reviewed, llm, judge, datasets, sample, seed, prompts, progress)
    report = review(job)
    typer.echo(review_table(report.columns) + "\n")
    rows = [("judge", report.judge)]
    rows.append(("this run", f"{report.pending} instances ({report.done_before} answered before)"))
    rows += [(key, str(report.counts[key])) for key in ("judged", "unparsed", "retried", "failed")]
    rows += [("elapsed", f"{report.elapsed:.1f}s")] + usage_rows(report.usage)
    failed = report.counts["failed"]
    left = f"{failed} instances unanswered (their requests failed)" if failed else None
    finish("review", rows + warning_rows(report.warnings), report.stopped, left, report.interrupted)


def review_table(columns: list[dict[str, Any]]) -> str:
    """Each question's share of yes [95% interval] per dataset, and the paper's figure."""
    from selfinstruct.cli.summary import columns as grid
    from selfinstruct.stages.review import ASKED

    rows: list[dict[str, Any]] = []
    for q, name in enumerate(ASKED):
        row: dict[str, Any] = {"question": ASKED[name]}
        for k, col in enumerate(columns):
            r = col["rows"][q]
            head = Path(col["dataset"]).name if len(columns) > 1 else "yes [95% CI]"
            if len(columns) > 1 and k and head == Path(columns[0]["dataset"]).name:
                head = col["dataset"]
            row[head] = share(r)
        row["paper"] = f"{r['paper']:.0%}"
        rows.append(row)
    sizes = "; ".join(
        f"{Path(c['dataset']).name}: {c['sampled']} sampled, {c['unanswered']} unanswered"
        for c in columns
    )
    return grid(rows) + f"\n({sizes})"


def share(r: dict[str, Any]) -> str:
    if not r["n"]:
        return "-"
    return f"{r['share']:.0%} [{r['low']:.0%}-{r['high']:.0%}] ({r['yes']}/{r['n']})"
