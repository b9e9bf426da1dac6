"""Stage 4: from the pool to the final dataset (METHOD.md, stage 4). No model calls.

Instruction rules run in pool order (so every run gives the same result): the stage 1 filters,
then ROUGE-L novelty against the seeds and every instruction kept before it. Instance rules
then clean each kept task. Everything dropped goes to the rejects file with its rule.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfinstruct.config import FilterSettings
from selfinstruct.filters import BLACKLIST, InstructionFilter
from selfinstruct.models import (
    Classification,
    Instance,
    InstanceSet,
    MachineInstruction,
    SeedTask,
    normalize,
)
from selfinstruct.pool import Pool, atomic_jsonl, bulk_load
from selfinstruct.similarity import dedup

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


@dataclass
class FilterJob:
    pool: Pool
    settings: FilterSettings
    out: Path | None = None
    include_seeds: bool = False


Write = Callable[[dict[str, Any]], None]


class InstanceRules:
    """The method's instance rules, then the optional heuristics; None keeps the instance."""

    def __init__(self, s: FilterSettings) -> None:
        self.s = s

    def __call__(self, inst: Instance, instruction: str) -> str | None:
        output, given = inst.output.strip(), inst.input.strip()
        if not output:
            return "empty_output"
        if given == output:
            return "input_equals_output"
        if given.endswith(":") or output.endswith(":"):
            return "ends_with_colon"
        return self.optional(output, instruction)

    def optional(self, output: str, instruction: str) -> str | None:
        words = len(output.split())
        if self.s.output_min_words is not None and words < self.s.output_min_words:
            return "output_too_short"
        if self.s.output_max_words is not None and words > self.s.output_max_words:
            return "output_too_long"
        if self.s.drop_output_repeating_instruction and normalize(instruction) in normalize(output):
            return "output_repeats_instruction"
        if self.s.drop_refusals and REFUSAL.search(output):
            return "refusal"
        return None


class Filter:
    def __init__(self, pool: Pool, settings: FilterSettings) -> None:
        self.pool, self.settings = pool, settings
        self.check = InstructionFilter(
            settings.blacklist if settings.blacklist is not None else BLACKLIST
        )
        self.rules = InstanceRules(settings)
        self.report = FilterReport()
        self.seen: set[tuple[str, str, str]] = set()

    def novel(self, seeds: list[SeedTask], reject: Write) -> Iterator[MachineInstruction]:
        """Machine instructions that pass the stage 1 filters and the ROUGE-L rule, in order."""
        passing = []
        for rec in self.pool.read(self.pool.instructions, MachineInstruction):
            self.report.tasks += 1
            verdict = self.check(rec.instruction)
            if verdict is None:
                passing.append(rec)
            else:
                self.drop(reject, verdict[0], rec.id, rec.instruction, detail=verdict[1])
        texts = [rec.instruction for rec in passing]
        against = [s.instruction for s in seeds]
        results = dedup(texts, self.settings.rouge_threshold, against)
        for rec, r in zip(passing, results, strict=True):
            if r.kept:
                yield rec
                continue
            similar = against[r.match] if r.in_against else texts[r.match]
            detail = f"ROUGE-L {r.score:.3f} with: {similar}"
            self.drop(reject, "too_similar", rec.id, rec.instruction, detail=detail)

    def task(self, rec: MachineInstruction, got: InstanceSet, write: Write, reject: Write) -> None:
        instruction = rec.instruction
        if got.truncated is not None:
            self.drop(reject, "truncated", rec.id, instruction, got.truncated)
        outputs: dict[str, set[str]] = {}
        for inst in got.instances:
            if inst.input.strip():
                outputs.setdefault(inst.input.strip(), set()).add(inst.output.strip())
        if any(len(v) > 1 for v in outputs.values()):
            for inst in got.instances:
                self.drop(reject, "conflicting_outputs", rec.id, instruction, inst)
            return
        kept = 0
        for inst in got.instances:
            rule = self.rules(inst, instruction)
            key = (normalize(instruction), inst.input.strip(), inst.output.strip())
            if rule is None and key in self.seen:
                rule = "duplicate"
            if rule is None and kept >= self.settings.max_instances:
                rule = "over_max_instances"
            if rule is not None:
                self.drop(reject, rule, rec.id, instruction, inst)
                continue
            self.seen.add(key)
            write(row(f"{rec.id}-{kept}", instruction, inst, got.is_classification))
            kept += 1
        self.report.instances_kept += kept
        self.report.tasks_kept += kept > 0

    def drop(
        self,
        reject: Write,
        rule: str,
        rid: str,
        instruction: str,
        inst: Instance | None = None,
        detail: str = "",
    ) -> None:
        self.report.dropped[rule] += 1
        record: dict[str, Any] = {"id": rid, "rule": rule, "instruction": instruction}
        if inst is not None:
            record.update(input=inst.input, output=inst.output)
        if detail:
            record["detail"] = detail
        reject(record)


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
    work = Filter(pool, job.settings)
    report = work.report
    report.out = job.out or pool.root / "dataset.jsonl"
    report.rejects = pool.root / "filter_rejects.jsonl"
    with atomic_jsonl(report.out) as write, atomic_jsonl(report.rejects) as reject:
        if job.include_seeds:
            report.seeds = write_seeds(seeds, write)
        for rec in work.novel(seeds, reject):
            flag = flags.get(rec.id)
            if flag is None or flag.is_classification is None:
                work.drop(reject, "not_classified", rec.id, rec.instruction)
            elif rec.id not in sets:
                work.drop(reject, "no_instances", rec.id, rec.instruction)
            else:
                work.task(rec, sets[rec.id], write, reject)
    return report


def write_seeds(seeds: list[SeedTask], write: Write) -> int:
    """Seeds are trusted: all their instances go in, unfiltered."""
    count = 0
    for seed in seeds:
        for k, inst in enumerate(seed.instances):
            write(row(f"{seed.id}-{k}", seed.instruction, inst, seed.is_classification))
            count += 1
    return count
