"""`distill FILE --out OUT`: a teacher's outputs for any Alpaca-style dataset file (JSON list
or JSONL); OUT holds the same records with the new outputs. The requests' cache and answers
live in a work pool beside OUT (`OUT.distill/`), so a re-run asks only what is missing."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfinstruct.config import Settings
from selfinstruct.errors import InputError
from selfinstruct.models import Distilled, teacher_name
from selfinstruct.stages.base import StageReport
from selfinstruct.stages.distill import DistillJob, DistillSettings, Question, distill
from selfinstruct.store.pool import Pool, atomic_jsonl, write_atomic
from selfinstruct.store.userfiles import read_records


@dataclass
class FileReport:
    records: int = 0
    written: int = 0
    missing: int = 0  # no answer yet (its request failed): left out, asked again next time
    cut: int = 0  # the answer stopped at max_tokens: left out
    work: Path = Path()


def work_pool(out: Path) -> Pool:
    return Pool(out.with_name(out.name + ".distill"))


def read_file(src: Path) -> list[dict[str, Any]]:
    """The records, each with a string instruction (and input and output, when present)."""
    if not src.is_file():
        raise InputError(f"{src}: file not found")
    items, where = read_records(src)
    records = []
    for pos, obj in items:
        if not isinstance(obj, dict):
            raise InputError(f"{src} {where} {pos}: not a JSON object")
        for name in ("instruction", "input", "output"):
            value = obj.get(name)
            if name == "instruction" and value is None:
                raise InputError(f"{src} {where} {pos}: field 'instruction': missing")
            if value is not None and not isinstance(value, str):
                raise InputError(f"{src} {where} {pos}: field '{name}': not a string")
        records.append(obj)
    if not records:
        raise InputError(f"{src}: no records (the file is empty)")
    return records


def distill_file(
    src: Path, out: Path, llm: Settings, settings: DistillSettings, progress: bool = True
) -> tuple[StageReport, FileReport]:
    """Answer every record's (instruction, input), then write OUT (atomically)."""
    records = read_file(src)
    questions = [Question(r["instruction"], r.get("input") or "", r.get("output")) for r in records]
    pool = work_pool(out)
    job = DistillJob(pool, llm, settings, None, progress, questions=questions)
    report = distill(job, settings)
    teacher = teacher_name(llm.model, settings.system)
    answers = {
        (a.instruction, a.input): a
        for a in pool.read(pool.distilled, Distilled)
        if a.teacher == teacher
    }
    result = FileReport(records=len(records), work=pool.root)
    kept = []
    for record, q in zip(records, questions, strict=True):
        answer = answers.get((q.instruction, q.input))
        if answer is None or answer.finish_reason == "length":
            result.missing += answer is None
            result.cut += answer is not None
            continue
        kept.append({**record, "output": answer.output})
    write_records(out, kept)
    result.written = len(kept)
    return report, result


def write_records(out: Path, records: list[dict[str, Any]]) -> None:
    if out.suffix == ".json":
        write_atomic(out, json.dumps(records, ensure_ascii=False, indent=2) + "\n")
        return
    with atomic_jsonl(out) as write:
        for record in records:
            write(record)
