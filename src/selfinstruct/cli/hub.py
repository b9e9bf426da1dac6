"""`selfinstruct push` (and `export --push-to-hub`): the dataset to the Hugging Face Hub."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from selfinstruct.cli.base import (
    OFF,
    ExportSeedOpt,
    IncludeSeedsOpt,
    PoolOpt,
    ShuffleOpt,
    SystemOpt,
    VariedTemplatesOpt,
    finish_output,
    handle_errors,
    open_pool,
)

if TYPE_CHECKING:
    from selfinstruct.outputs.export import ExportJob

PrivateOpt = Annotated[bool, typer.Option(help="Create the repo private.", show_default=OFF)]


def push_export(job: ExportJob, repo_id: str, private: bool, license: str, language: str) -> None:
    """Push an export job's records and print where they went (to stderr when the export
    itself went to stdout)."""
    from selfinstruct.outputs.hub import PushJob, push

    report = push(PushJob(job, repo_id, private=private, license=license, language=language))
    ex = report.export
    source = f"{ex.from_dataset} from the dataset + {ex.from_seeds} seed instances"
    rows = [
        ("repo", report.repo_id + (" (private)" if report.private else "")),
        ("records", f"{ex.from_dataset + ex.from_seeds} ({source})"),
        ("format", f"{job.format}, Parquet"),
    ]
    rows += [(name, f"{n} -> {path}") for name, n, path in report.files]
    rows += [("card", "README.md"), ("url", report.url)]
    finish_output("push", rows, job.out)


@handle_errors
def push_cmd(
    repo_id: Annotated[
        str, typer.Argument(help="NAMESPACE/NAME of the dataset repo.", show_default=False)
    ],
    fmt: Annotated[
        str, typer.Option("--format", help="alpaca, openai, sharegpt or prompt-completion.")
    ] = "alpaca",
    pool: PoolOpt = Path("data"),
    private: PrivateOpt = False,
    split: Annotated[
        str | None,
        typer.Option(help="e.g. train=0.95,validation=0.05 (sums to 1).", show_default="train"),
    ] = None,
    license: Annotated[str, typer.Option(help="The card's license id (Hub's list).")] = "other",
    language: Annotated[str, typer.Option(help="The card's language code.")] = "en",
    include_seeds: IncludeSeedsOpt = False,
    shuffle: ShuffleOpt = False,
    seed: ExportSeedOpt = 0,
    system: SystemOpt = None,
    varied_templates: VariedTemplatesOpt = False,
) -> None:
    """Upload the final dataset (Parquet) and a dataset card to the Hugging Face Hub."""
    from selfinstruct.outputs.export import ExportJob

    job = ExportJob(
        open_pool(pool),
        fmt,
        Path("."),  # no file: push writes in memory
        include_seeds=include_seeds,
        shuffle=shuffle,
        seed=seed,
        split=split,
        system=system,
        varied_templates=varied_templates,
    )
    push_export(job, repo_id, private, license, language)
