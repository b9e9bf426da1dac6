"""`selfinstruct preferences`: Self-Rewarding preference pairs for DPO (docs/preferences.md)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from selfinstruct.cli.base import (
    BatchOpt,
    PoolOpt,
    ProgressOpt,
    PromptsOpt,
    finish,
    llm_command,
    open_pool,
)
from selfinstruct.cli.judge import JudgeApiKeyOpt, JudgeBaseUrlOpt, JudgeModelOpt, judge_settings
from selfinstruct.cli.summary import table, usage_rows, warning_rows
from selfinstruct.config import FileConfig, Settings

if TYPE_CHECKING:
    from selfinstruct.stages.preferences import PreferencesReport


@llm_command
def preferences_cmd(
    llm: Settings,
    config: FileConfig,
    candidates: Annotated[
        int, typer.Option(min=2, max=16, help="Candidate answers per prompt.")
    ] = 4,
    margin: Annotated[
        int,
        typer.Option(min=1, max=4, help="Keep a pair when best and worst differ by this much."),
    ] = 1,
    temperature: Annotated[
        float, typer.Option(min=0.0, help="The candidates' sampling temperature.")
    ] = 0.8,
    max_tokens: Annotated[int, typer.Option(min=16, help="Longest candidate, in tokens.")] = 1024,
    use_n: Annotated[
        bool,
        typer.Option(help="One request with `n` per prompt (one by one if the server refuses)."),
    ] = True,
    pool: PoolOpt = Path("data"),
    judge_model: JudgeModelOpt = None,
    judge_base_url: JudgeBaseUrlOpt = None,
    judge_api_key: JudgeApiKeyOpt = None,
    prompts: PromptsOpt = None,
    progress: ProgressOpt = True,
    batch: BatchOpt = False,
) -> None:
    """Preference pairs for DPO: candidates per dataset prompt, scored by the judge; then
    `export --format dpo`."""
    from selfinstruct.stages.preferences import PreferenceSettings, PreferencesJob, preferences

    judge = judge_settings(config, judge_model, judge_base_url, judge_api_key)
    settings = PreferenceSettings(
        candidates, margin, temperature, max_tokens=max_tokens, use_n=use_n
    )
    job = PreferencesJob(open_pool(pool), llm, judge, settings, prompts, progress)
    if batch:
        from selfinstruct.pipeline.preferences_batch import advance_preferences

        return print_preferences(advance_preferences(job), batch=True)
    print_preferences(preferences(job))


def print_preferences(report: PreferencesReport, batch: bool = False) -> None:
    o = report.outcomes
    share = f"{o['pair'] / report.total:.0%}" if report.total else "-"
    totals = [
        ("pairs", f"{o['pair']} of {report.total} prompts ({share})"),
        ("ties", str(o["tie"])),
        ("below margin", str(o["margin"])),
        ("unscored", f"{o['unscored']} (fewer than two candidates with a score)"),
    ]
    head = [("generator", report.generator), ("judge", report.judge)]
    if not (report.pending or batch):
        typer.echo(f"Nothing to do: all {report.total} prompts have their candidates scored.")
        return typer.echo(table(head + totals))
    done = f"{report.pending} prompts ({report.done_before} done before)"
    counts = ", ".join(
        f"{report.counts[k]} {k}".replace("_", " ")
        for k in ("pair", "tie", "margin", "unscored", "failed")
    )
    rows = [*head, ("this run", done), ("outcomes", counts)]
    if batch:
        rows += [(key, str(report.counts[key])) for key in ("submitted", "waiting")]
    rows += [
        ("unscored answers", str(report.counts["unscored_candidates"])),
        ("judge retried", str(report.counts["retried"])),
        *totals,
        ("elapsed", f"{report.elapsed:.1f}s"),
    ]
    rows += [(f"generator {k}", v) for k, v in usage_rows(report.usage)]
    rows += [(f"judge {k}", v) for k, v in usage_rows(report.judge_usage)]
    failed = report.counts["failed"]
    left = f"{failed} prompts without a record (their requests failed)" if failed else None
    rows += warning_rows(report.warnings)
    finish("preferences", rows, report.stopped, left, report.interrupted)
