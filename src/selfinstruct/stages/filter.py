"""Stage 4: from the pool to the final dataset (docs/method.md, stage 4). No model calls.

Instruction rules run in pool order (so every run gives the same result): the stage 1 filters,
then ROUGE-L novelty against the seeds and every instruction kept before it. Instance rules
then clean each kept task. Everything dropped goes to the rejects file with its rule.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from selfinstruct.config import FilterSettings
from selfinstruct.method.alpaca import ALPACA_BLACKLIST
from selfinstruct.method.filters import BLACKLIST, InstructionFilter
from selfinstruct.method.parsing import chat_residue
from selfinstruct.method.similarity import dedup
from selfinstruct.models import (
    Classification,
    Drops,
    Instance,
    InstanceSet,
    MachineInstruction,
    SeedTask,
    normalize,
)
from selfinstruct.stages.alpaca import ALPACA, pool_preset
from selfinstruct.stages.curated import MinScore
from selfinstruct.stages.distill import Answers
from selfinstruct.store.pool import Pool, atomic_jsonl, bulk_load

REFUSAL = re.compile(
    r"\b(?:as an ai\b|as a (?:large )?language model|i(?:'m| am) (?:sorry|unable)"
    r"|i can(?:'t|not) )",
    re.IGNORECASE,
)


@dataclass
class FilterReport:
    tasks: int = 0
    tasks_kept: int = 0
    instances_kept: int = 0
    seeds: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    out: Path = Path()
    rejects: Path = Path()
    teacher: str | None = None  # --outputs distilled: whose answers the dataset holds


@dataclass
class FilterJob:
    pool: Pool
    settings: FilterSettings
    out: Path | None = None
    include_seeds: bool = False
    outputs: str = "original"  # or "distilled": the teacher's answers (stages/distill.py)
    teacher: str | None = None  # whose answers; None: the last teacher asked


Write = Callable[[dict[str, Any]], None]
Drop = Callable[..., None]


Verdict = tuple[str, str] | None  # (rule, detail) to drop, None to keep


class InstanceRules:
    """The method's instance rules, chat residue, then the optional heuristics."""

    def __init__(self, s: FilterSettings) -> None:
        self.s = s

    def __call__(self, inst: Instance, instruction: str) -> Verdict:
        output, given = inst.output.strip(), inst.input.strip()
        if not output:
            return ("empty_output", "the output is empty")
        if given == output:
            return ("input_equals_output", "the output repeats the input")
        if given.endswith(":") or output.endswith(":"):
            return (
                "ends_with_colon",
                f"the {'input' if given.endswith(':') else 'output'} ends with ':'",
            )
        if self.s.drop_chat_residue and (found := residue(instruction, given, output)):
            return ("chat_residue", found)
        return self.optional(output, instruction)

    def optional(self, output: str, instruction: str) -> Verdict:
        words, s = len(output.split()), self.s
        if s.output_min_words is not None and words < s.output_min_words:
            return (
                "output_too_short",
                f"{words} words, under output_min_words {s.output_min_words}",
            )
        if s.output_max_words is not None and words > s.output_max_words:
            return ("output_too_long", f"{words} words, over output_max_words {s.output_max_words}")
        if s.drop_output_repeating_instruction and normalize(instruction) in normalize(output):
            return ("output_repeats_instruction", "the output contains the instruction")
        if s.drop_refusals and (refusal := REFUSAL.search(output)):
            return ("refusal", f"{refusal.group(0)!r}")
        return None


class Filter:
    def __init__(
        self, pool: Pool, settings: FilterSettings, answers: Answers | None = None
    ) -> None:
        self.pool, self.settings, self.answers = pool, settings, answers
        self.check = InstructionFilter(
            settings.blacklist if settings.blacklist is not None else BLACKLIST
        )
        self.rules = InstanceRules(settings)
        self.report = FilterReport()
        self.drops = Drops(self.report.dropped, lambda record: None)  # write_dataset's file
        self.graded = MinScore(pool, settings.min_score)  # curate's scores: `low_score`

    def novel(self, seeds: list[SeedTask]) -> Iterator[MachineInstruction]:
        """Machine instructions that pass the stage 1 filters and the ROUGE-L rule, in order."""
        passing = []
        for rec in self.pool.read(self.pool.instructions, MachineInstruction):
            self.report.tasks += 1
            verdict = self.check(rec.instruction)
            if verdict is None:
                passing.append(rec)
            else:
                rule, detail = verdict
                self.drop(rule, rid=rec.id, instruction=rec.instruction, detail=detail)
        texts = [rec.instruction for rec in passing]
        against = [s.instruction for s in seeds]
        results = dedup(texts, self.settings.rouge_threshold, against)
        for rec, r in zip(passing, results, strict=True):
            if r.kept:
                yield rec
                continue
            similar = against[r.match] if r.in_against else texts[r.match]
            detail = f"ROUGE-L {r.score:.3f} with: {similar}"
            self.drop("too_similar", rid=rec.id, instruction=rec.instruction, detail=detail)

    def task(self, rec: MachineInstruction, got: InstanceSet, write: Write) -> None:
        """The method's order: validity rules, then conflicting outputs among the valid ones,
        then exact duplicates, then a seeded sample of at most max_instances."""
        drop = partial(self.drop, rid=rec.id, instruction=rec.instruction)
        if self.answers is not None:  # the teacher's outputs, then the same rules
            got = self.answers.swap(got, drop)
        if got.truncated is not None:
            drop("truncated", inst=got.truncated, detail="the reply was cut at max_tokens here")
        if not got.instances:
            return drop("no_instances", detail="the reply held no instance the parser could read")
        valid = []
        for inst in got.instances:
            verdict = self.rules(inst, rec.instruction) or self.graded(inst, rec.instruction)
            if verdict is None:
                valid.append(inst)
            else:
                drop(verdict[0], inst=inst, detail=verdict[1])
        if conflicting(valid):
            for inst in valid:
                drop("conflicting_outputs", inst=inst, detail="an input with two outputs")
            return
        unique: dict[tuple[str, str], Instance] = {}
        for inst in valid:
            if unique.setdefault((inst.input.strip(), inst.output.strip()), inst) is not inst:
                drop("duplicate", inst=inst, detail="the same input and output again")
        kept = self.sample(rec.id, list(unique.values()), drop)
        for k, inst in enumerate(kept):
            write(row(f"{rec.id}-{k}", rec.instruction, inst, got.is_classification))
        self.report.instances_kept += len(kept)
        self.report.tasks_kept += bool(kept)

    def sample(
        self, rid: str, instances: list[Instance], drop: Callable[..., None]
    ) -> list[Instance]:
        """At most max_instances, sampled with a seed per task (order kept); the rest dropped."""
        cap = self.settings.max_instances
        if len(instances) <= cap:
            return instances
        rng = random.Random(f"{self.settings.seed}:{rid}")
        chosen = set(rng.sample(range(len(instances)), cap))
        detail = f"{len(instances)} instances, max_instances {cap}"
        for k, inst in enumerate(instances):
            if k not in chosen:
                drop("over_max_instances", inst=inst, detail=detail)
        return [inst for k, inst in enumerate(instances) if k in chosen]

    def drop(
        self,
        rule: str,
        *,
        rid: str,
        instruction: str,
        inst: Instance | None = None,
        detail: str = "",
    ) -> None:
        """A rejects record for a rule's drop (the instance's fields when it is one)."""
        record: dict[str, Any] = {"id": rid, "rule": rule, "instruction": instruction}
        if inst is not None:
            record.update(input=inst.input, output=inst.output)
        record["detail"] = detail
        self.drops(rule, record)


def conflicting(instances: list[Instance]) -> bool:
    """Whether two instances share a non-empty input but not their output."""
    outputs: dict[str, str] = {}
    for inst in instances:
        given, output = inst.input.strip(), inst.output.strip()
        if given and outputs.setdefault(given, output) != output:
            return True
    return False


def residue(*fields: str) -> str:
    """What a chat model left in any of the fields ("" when none)."""
    return next((found for text in fields if (found := chat_residue(text))), "")


def row(
    rid: str, instruction: str, inst: Instance, is_classification: bool | None
) -> dict[str, Any]:
    return {
        "id": rid,
        "instruction": instruction,
        "input": inst.input,
        "output": inst.output,
        "is_classification": is_classification,
    }


def filter_pool(job: FilterJob) -> FilterReport:
    """Write the final dataset and the rejects file; the same pool always gives the same bytes."""
    with job.pool.writing():
        return write_dataset(job)


def write_dataset(job: FilterJob) -> FilterReport:
    """Stage 4 on a pool whose lock the caller holds."""
    pool = job.pool
    with bulk_load():
        seeds = list(pool.read(pool.seeds, SeedTask))
        flags = {c.id: c for c in pool.read(pool.classifications, Classification)}
        sets = {s.id: s for s in pool.read(pool.instances, InstanceSet)}
    answers = Answers(pool, job.teacher) if job.outputs == "distilled" else None
    work = Filter(pool, preset_filter(pool, job.settings), answers)
    report = work.report
    report.teacher = answers.teacher if answers else None
    report.out = job.out or pool.dataset
    report.rejects = pool.filter_rejects
    with atomic_jsonl(report.out) as write, atomic_jsonl(report.rejects) as reject:
        if job.include_seeds:
            report.seeds = write_seeds(seeds, write)
        work.drops = Drops(report.dropped, reject)
        for rec in work.novel(seeds):
            flag = flags.get(rec.id)
            drop = partial(work.drop, rid=rec.id, instruction=rec.instruction)
            if flag is None or (flag.is_classification is None and flag.preset is None):
                # a preset's "not asked" (None) is no failed answer
                drop("not_classified", detail="stage 2 has not classified it yet")
            elif rec.id not in sets:
                drop("no_instances", detail="stage 3 has not written its instances yet")
            else:
                work.task(rec, sets[rec.id], write)
    return report


def preset_filter(pool: Pool, settings: FilterSettings) -> FilterSettings:
    """The settings for the pool's preset: alpaca's longer blacklist unless one is set."""
    if settings.blacklist is None and pool_preset(pool) == ALPACA:
        return settings.model_copy(update={"blacklist": list(ALPACA_BLACKLIST)})
    return settings


def write_seeds(seeds: list[SeedTask], write: Write) -> int:
    """Seeds are trusted: all their instances go in, unfiltered."""
    count = 0
    for seed in seeds:
        for k, inst in enumerate(seed.instances):
            write(row(f"{seed.id}-{k}", seed.instruction, inst, seed.is_classification))
            count += 1
    return count
