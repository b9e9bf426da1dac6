"""The options that pick a recipe: `--preset` of `generate` and `run`, `--outputs` of `filter`."""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from selfinstruct.stages.filter import FilterReport

PresetOpt = Annotated[
    str | None,
    typer.Option(
        help="self-instruct, or alpaca (Stanford Alpaca's: whole tasks, no stage 2).",
        show_default="the pool's, else self-instruct",
    ),
]
ForceOpt = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Allow a --preset other than the one the pool was made with.",
        show_default="off",
    ),
]


def preset_flags(preset: str | None, force: bool) -> dict[str, Any]:
    """The [generate] settings these flags set (None: left to the config file and the pool)."""
    return {"preset": preset, "force_preset": force or None}


class Outputs(str, Enum):
    original = "original"
    distilled = "distilled"


OutputsOpt = Annotated[
    Outputs,
    typer.Option(help="The instances' own outputs, or the teacher's (`selfinstruct distill`)."),
]
TeacherOpt = Annotated[
    str | None,
    typer.Option(
        help="With --outputs distilled: whose answers (a --model given to distill).",
        show_default="the last teacher asked",
    ),
]


def teacher_rows(report: FilterReport) -> list[tuple[str, str]]:
    """The summary's line for --outputs distilled."""
    if report.teacher is None:
        return []
    lost = report.dropped["no_teacher_answer"]
    return [("outputs", f"from {report.teacher} ({lost} instances without an answer dropped)")]
