"""The stage workers of one pool, built alike for `run` and batch mode."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from selfinstruct.config import ClassifySettings, GenerateSettings, InstancesSettings
from selfinstruct.llm.client import LLM
from selfinstruct.method.prompts import load_template
from selfinstruct.models import MachineInstruction
from selfinstruct.stages.alpaca import make_generator, settle_preset, template_name
from selfinstruct.stages.classify import Classifier
from selfinstruct.stages.generate import Generator
from selfinstruct.stages.instances import INPUT_FIRST, OUTPUT_FIRST, InstanceWriter
from selfinstruct.store.pool import Pool, pool_seeds, store_seeds


class StagesJob(Protocol):
    """What `run` and batch mode share of their jobs."""

    pool: Pool
    seeds: Path | None
    generate: GenerateSettings
    classify: ClassifySettings
    instances: InstancesSettings
    prompts: Path | None
    seed: int


def classifier(job: StagesJob, llm: LLM) -> Classifier:
    template = load_template("classify", job.prompts)
    return Classifier(llm, template, job.classify, job.pool.classifications)


def instance_writer(job: StagesJob, llm: LLM) -> InstanceWriter:
    kinds = {k: load_template(f"instances_{k}", job.prompts) for k in (OUTPUT_FIRST, INPUT_FIRST)}
    return InstanceWriter(llm, kinds, job.instances, job.pool)


def generator(
    job: StagesJob, llm: LLM, machine: list[MachineInstruction] | None = None
) -> Generator:
    """Stage 1's worker; the seeds come from --seeds or the pool, and are stored in it."""
    seeds = pool_seeds(job.pool, job.seeds)
    settings = settle_preset(job.pool, job.generate)
    store_seeds(job.pool, seeds)
    template = load_template(template_name(settings, llm.settings.api), job.prompts)
    return make_generator(job.pool, seeds, llm, settings, template, job.seed, machine)


def workers(job: StagesJob, llms: Mapping[str, LLM]) -> tuple[Classifier, InstanceWriter]:
    return classifier(job, llms["classify"]), instance_writer(job, llms["instances"])
