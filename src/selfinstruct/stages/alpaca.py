"""`--preset alpaca`: Stanford Alpaca's one-stage recipe on stage 1's machinery (docs/alpaca.md).

One request shows 3 seed tasks with their instances and the model writes up to 16 whole tasks;
each new instruction goes through the same filters and ROUGE-L novelty as stage 1's, and an
accepted one is written with its one instance and a classification marked "not asked", so the
pool holds what stages 2 and 3 would have left and stage 4 and every output read it unchanged.
"""

from __future__ import annotations

import random
from typing import Any

from selfinstruct.config import GenerateSettings
from selfinstruct.errors import ConfigError
from selfinstruct.llm.client import LLM, Request
from selfinstruct.method.alpaca import ALPACA_BLACKLIST, Shown, Task, listing, parse_tasks
from selfinstruct.method.prompts import Template
from selfinstruct.models import (
    Classification,
    Instance,
    InstanceSet,
    MachineInstruction,
    SeedTask,
)
from selfinstruct.stages.generate import Generator
from selfinstruct.store import manifest
from selfinstruct.store.cache import Completion
from selfinstruct.store.pool import JsonlAppender, Pool

DEFAULT, ALPACA = "self-instruct", "alpaca"
# Alpaca's settings, for each one the user did not set (flags, config file).
ALPACA_SETTINGS: dict[str, Any] = {
    "examples": 3,
    "machine_examples": 0,
    "new_per_request": 16,
    "temperature": 1.0,
    "top_p": 1.0,
    "presence_penalty": 0.0,
    "max_tokens": 3072,
    "blacklist": list(ALPACA_BLACKLIST),
}


def pool_preset(pool: Pool) -> str:
    """The recipe the pool was made with (run.json; self-instruct for older pools)."""
    return str(manifest.load(pool).get("preset") or DEFAULT)


def settle_preset(pool: Pool, settings: GenerateSettings) -> GenerateSettings:
    """The settings of this run's preset: the one asked for, else the pool's. A pool that holds
    instructions of another preset is refused unless force_preset (--force)."""
    stored = manifest.load(pool).get("preset")
    if stored is None and has_instructions(pool):
        stored = DEFAULT
    wanted = settings.preset or stored or DEFAULT
    mixing = stored is not None and wanted != stored and has_instructions(pool)
    if mixing and not settings.force_preset:
        raise ConfigError(
            f"the pool {pool.root} was made with --preset {stored}; --preset {wanted} would "
            "mix two recipes in one pool: use a new --pool, or pass --force to mix them"
        )
    if wanted != manifest.load(pool).get("preset"):
        manifest.record_preset(pool, wanted)
    return with_defaults(settings.model_copy(update={"preset": wanted}))


def with_defaults(settings: GenerateSettings) -> GenerateSettings:
    """The settings with the preset's defaults for what the user did not set."""
    if settings.preset != ALPACA:
        return settings
    unset = {k: v for k, v in ALPACA_SETTINGS.items() if k not in settings.model_fields_set}
    return settings.model_copy(update=unset)


def has_instructions(pool: Pool) -> bool:
    return pool.instructions.is_file() and pool.instructions.stat().st_size > 0


def template_name(settings: GenerateSettings, api: str) -> str:
    return "generate_alpaca" if settings.preset == ALPACA else f"generate_{api}"


def make_generator(
    pool: Pool,
    seeds: list[SeedTask],
    llm: LLM,
    settings: GenerateSettings,
    template: Template,
    seed: int,
    machine: list[MachineInstruction] | None,
) -> Generator:
    """Stage 1's worker for the settings' preset (see settle_preset)."""
    kind = AlpacaGenerator if settings.preset == ALPACA else Generator
    return kind(pool, seeds, llm, settings, template, seed, machine=machine)


def alpaca_prompt(
    seeds: list[SeedTask], settings: GenerateSettings, template: Template, seed: int
) -> str:
    """The first round's prompt, for --dry-run."""
    return build_prompt(random.Random(f"{seed}:0"), shown(seeds), settings, template)[0]


def shown(seeds: list[SeedTask]) -> list[Shown]:
    """Each seed as the prompt shows it: with its first instance."""
    return [Shown(s.instruction, s.instances[0].input, s.instances[0].output) for s in seeds]


def build_prompt(
    rng: random.Random, seeds: list[Shown], settings: GenerateSettings, template: Template
) -> tuple[str, int, int]:
    """(text, first new number, last new number): seed tasks only, as Alpaca sampled them."""
    picked = rng.sample(seeds, min(settings.examples, len(seeds)))
    first, last = len(picked) + 1, len(picked) + settings.new_per_request
    values = {"count": len(picked), "new": settings.new_per_request, "last": last}
    return template.render(examples=listing(picked), next=first, **values), first, last


class AlpacaGenerator(Generator):
    """Stage 1 with Alpaca's prompt and parser; an accepted task is written whole."""

    whole_tasks = True

    def __init__(
        self,
        pool: Pool,
        seeds: list[SeedTask],
        llm: LLM,
        settings: GenerateSettings,
        template: Template,
        seed: int,
        machine: list[MachineInstruction] | None = None,
    ) -> None:
        super().__init__(pool, seeds, llm, settings, template, seed, machine=machine)
        self.shown = shown(seeds)
        self.tasks: list[Task] = []  # of the reply being applied
        self.finish_reason = "stop"
        self.instances_out = JsonlAppender(pool.instances)
        self.classes_out = JsonlAppender(pool.classifications)

    def prompt(self, round_no: int) -> tuple[str, int, int]:
        rng = random.Random(f"{self.seed}:{round_no}")
        return build_prompt(rng, self.shown, self.settings, self.template)

    def params(self, last: int) -> dict[str, Any]:
        params: dict[str, Any] = {"max_tokens": self.settings.max_tokens}
        params.update(self.settings.sampling(self.llm.settings.api))
        params["stop"] = [f"\n{last + 1}.", f"\n{last + 1} ."]  # at most `new_per_request`
        return params

    def parse(self, req: Request, completion: Completion) -> list[str]:
        first, last = int(req.meta["first"]), int(req.meta["last"])
        text = completion.text
        if self.llm.settings.api == "completions":  # it continues after "N. Instruction:"
            text = f"{first}. Instruction:{text}"
        cut = completion.finish_reason == "length"
        self.tasks = parse_tasks(text, first, last, truncated=cut)
        self.finish_reason = completion.finish_reason
        return [task.instruction for task in self.tasks]

    def keep(self, record: MachineInstruction, i: int) -> None:
        """The task's instance and its "not asked" classification first: the instruction's
        record, written last, marks the task as done (a crash before it is replayed)."""
        task = self.tasks[i]
        instance = Instance(input=task.input, output=task.output)
        self.instances_out.append(
            InstanceSet(
                id=record.id,
                instruction=record.instruction,
                is_classification=None,
                prompt_kind=ALPACA,
                instances=[instance],
                raw=task.raw,
                finish_reason=self.finish_reason,
                request=record.request,
            )
        )
        self.classes_out.append(
            Classification(
                id=record.id,
                instruction=record.instruction,
                is_classification=None,
                answer="",
                request=record.request,
                preset=ALPACA,
            )
        )
        super().keep(record, i)

    def close(self) -> None:
        super().close()
        self.instances_out.close()
        self.classes_out.close()
