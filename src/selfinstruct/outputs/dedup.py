"""`selfinstruct dedup`: the stage 4 near-duplicate filter for any instruction dataset."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfinstruct.errors import InputError
from selfinstruct.method.similarity import dedup
from selfinstruct.store.pool import atomic_jsonl, iter_jsonl, write_atomic


@dataclass
class DedupReport:
    total: int = 0
    kept: int = 0
    elapsed: float = 0.0


def read_records(path: Path, field: str) -> list[tuple[dict[str, Any], str]]:
    """Records of a JSONL file or a JSON list, each with its text field checked."""
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    with open(path, "rb") as fp:
        head = fp.read(64).lstrip()
    if head.startswith(b"["):
        items = list(enumerate(load_json_list(path), start=1))
        where = "item"
    else:
        items = list(iter_jsonl(path))
        where = "line"
    records = []
    for pos, obj in items:
        value = obj.get(field) if isinstance(obj, dict) else None
        if not isinstance(value, str):
            problem = "missing" if isinstance(obj, dict) and field not in obj else "not a string"
            raise InputError(f"{path} {where} {pos}: field '{field}': {problem}")
        records.append((obj, value))
    return records


def load_json_list(path: Path) -> list[Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: not a valid JSON list: {e}") from None
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON list of records")
    return data


def dedup_file(
    src: Path,
    out: Path,
    field: str,
    threshold: float,
    rejected: Path | None = None,
    against: Path | None = None,
) -> DedupReport:
    """Keep each record whose field is ROUGE-L <= threshold against all kept before it."""
    started = time.monotonic()
    records = read_records(src, field)
    pool = [text for _, text in read_records(against, field)] if against else []
    texts = [text for _, text in records]
    results = list(dedup(texts, threshold, pool))
    report = DedupReport(total=len(records))
    kept = [obj for (obj, _), r in zip(records, results, strict=True) if r.kept]
    report.kept = len(kept)
    if out.suffix == ".json":
        write_atomic(out, json.dumps(kept, ensure_ascii=False, indent=2) + "\n")
    else:
        with atomic_jsonl(out) as write:
            for obj in kept:
                write(obj)
    if rejected is not None:
        with atomic_jsonl(rejected) as write:
            for (obj, _), r in zip(records, results, strict=True):
                if not r.kept:
                    similar = pool[r.match] if r.in_against else texts[r.match]
                    write({**obj, "_most_similar": similar, "_rouge_l": r.score})
    report.elapsed = time.monotonic() - started
    return report
