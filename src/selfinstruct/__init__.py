"""Self-Instruct: turn a few seed tasks into an instruction-tuning dataset.

The public Python API (docs/python.md): the stage functions with their job, settings and
report types. The `selfinstruct` command is a client of this same surface. Names load on
first use, so importing the package (or `selfinstruct --help`) loads neither openai nor numpy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Each public name and the module that defines it.
_WHERE = {
    "Pool": "selfinstruct.store.pool",
    "Settings": "selfinstruct.config",
    "GenerateSettings": "selfinstruct.config",
    "ClassifySettings": "selfinstruct.config",
    "InstancesSettings": "selfinstruct.config",
    "FilterSettings": "selfinstruct.config",
    "BacktranslateSettings": "selfinstruct.config",
    "SelfInstructError": "selfinstruct.errors",
    "generate": "selfinstruct.stages.generate",
    "GenerateJob": "selfinstruct.stages.generate",
    "GenerateReport": "selfinstruct.stages.generate",
    "classify": "selfinstruct.stages.classify",
    "instances": "selfinstruct.stages.instances",
    "StageJob": "selfinstruct.stages.base",
    "StageReport": "selfinstruct.stages.base",
    "filter_pool": "selfinstruct.stages.filter",
    "FilterJob": "selfinstruct.stages.filter",
    "FilterReport": "selfinstruct.stages.filter",
    "backtranslate": "selfinstruct.stages.backtranslate",
    "BacktranslateJob": "selfinstruct.stages.backtranslate",
    "BacktranslateReport": "selfinstruct.stages.backtranslate",
    "run_pipeline": "selfinstruct.pipeline.run",
    "RunJob": "selfinstruct.pipeline.run",
    "RunReport": "selfinstruct.pipeline.run",
    "pool_status": "selfinstruct.pipeline.status",
    "distill": "selfinstruct.stages.distill",
    "DistillJob": "selfinstruct.stages.distill",
    "DistillSettings": "selfinstruct.stages.distill",
    "distill_file": "selfinstruct.outputs.distill_file",
    "JudgeSettings": "selfinstruct.config",
    "curate": "selfinstruct.stages.curate",
    "curate_file": "selfinstruct.stages.curate",
    "CurateJob": "selfinstruct.stages.curate",
    "CurateReport": "selfinstruct.stages.curate",
    "preferences": "selfinstruct.stages.preferences",
    "PreferencesJob": "selfinstruct.stages.preferences",
    "PreferencesReport": "selfinstruct.stages.preferences",
    "PreferenceSettings": "selfinstruct.stages.preferences",
    "review": "selfinstruct.stages.review",
    "ReviewJob": "selfinstruct.stages.review",
    "ReviewReport": "selfinstruct.stages.review",
    "dedup": "selfinstruct.method.similarity",
    "rouge_l": "selfinstruct.method.similarity",
    "evolve": "selfinstruct.stages.evolve",
    "EvolveJob": "selfinstruct.stages.evolve",
    "EvolveReport": "selfinstruct.stages.evolve",
    "EvolveSettings": "selfinstruct.config",
    "mix": "selfinstruct.outputs.mix",
    "MixJob": "selfinstruct.outputs.mix",
    "parse_source": "selfinstruct.outputs.mix",
    "diversity_figures": "selfinstruct.outputs.diversity",
}
__all__ = [
    "__version__",
    "Pool",
    "Settings",
    "GenerateSettings",
    "ClassifySettings",
    "InstancesSettings",
    "FilterSettings",
    "BacktranslateSettings",
    "SelfInstructError",
    "generate",
    "GenerateJob",
    "GenerateReport",
    "classify",
    "instances",
    "StageJob",
    "StageReport",
    "filter_pool",
    "FilterJob",
    "FilterReport",
    "backtranslate",
    "BacktranslateJob",
    "BacktranslateReport",
    "run_pipeline",
    "distill",
    "DistillJob",
    "DistillSettings",
    "distill_file",
    "RunJob",
    "RunReport",
    "pool_status",
    "JudgeSettings",
    "curate",
    "curate_file",
    "CurateJob",
    "CurateReport",
    "preferences",
    "PreferencesJob",
    "PreferencesReport",
    "PreferenceSettings",
    "review",
    "ReviewJob",
    "ReviewReport",
    "dedup",
    "rouge_l",
    "evolve",
    "EvolveJob",
    "EvolveReport",
    "EvolveSettings",
    "mix",
    "MixJob",
    "parse_source",
    "diversity_figures",
]

if TYPE_CHECKING:
    from selfinstruct.config import (
        BacktranslateSettings,
        ClassifySettings,
        EvolveSettings,
        FilterSettings,
        GenerateSettings,
        InstancesSettings,
        JudgeSettings,
        Settings,
    )
    from selfinstruct.errors import SelfInstructError
    from selfinstruct.method.similarity import dedup, rouge_l
    from selfinstruct.outputs.distill_file import distill_file
    from selfinstruct.outputs.diversity import diversity_figures
    from selfinstruct.outputs.mix import MixJob, mix, parse_source
    from selfinstruct.pipeline.run import RunJob, RunReport, run_pipeline
    from selfinstruct.pipeline.status import pool_status
    from selfinstruct.stages.backtranslate import (
        BacktranslateJob,
        BacktranslateReport,
        backtranslate,
    )
    from selfinstruct.stages.base import StageJob, StageReport
    from selfinstruct.stages.classify import classify
    from selfinstruct.stages.curate import CurateJob, CurateReport, curate, curate_file
    from selfinstruct.stages.distill import DistillJob, DistillSettings, distill
    from selfinstruct.stages.evolve import EvolveJob, EvolveReport, evolve
    from selfinstruct.stages.filter import FilterJob, FilterReport, filter_pool
    from selfinstruct.stages.generate import GenerateJob, GenerateReport, generate
    from selfinstruct.stages.instances import instances
    from selfinstruct.stages.preferences import (
        PreferenceSettings,
        PreferencesJob,
        PreferencesReport,
        preferences,
    )
    from selfinstruct.stages.review import ReviewJob, ReviewReport, review
    from selfinstruct.store.pool import Pool


def __getattr__(name: str) -> Any:
    """Import a public name's module when the name is first used (PEP 562)."""
    if name not in _WHERE:
        raise AttributeError(f"module 'selfinstruct' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value
