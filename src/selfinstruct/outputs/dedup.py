"""`selfinstruct dedup`: the stage 4 near-duplicate filter for any instruction dataset.

`--field` names the text to compare: a top-level key (`instruction`), or `LIST.ROLE`, the
first turn of a chat whose role is ROLE: `messages.user` (OpenAI: `role`/`content`) or
`conversations.human` (ShareGPT: `from`/`value`; `user` and `human` match each other). Without
`--field`, each file's first record decides: `instruction`, `messages.user`,
`conversations.user` or `prompt`, by the first of those keys it has.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfinstruct.errors import ConfigError, InputError
from selfinstruct.method.similarity import dedup
from selfinstruct.store import userfiles
from selfinstruct.store.userfiles import is_std, shown, write_json_list, write_jsonl

DETECTED = ("instruction", "messages.user", "conversations.user", "prompt")
ROLE_KEYS, TEXT_KEYS = ("role", "from"), ("content", "value")
SAME_ROLE = {"user": "human", "human": "user", "assistant": "gpt", "gpt": "assistant"}


@dataclass
class DedupReport:
    total: int = 0
    kept: int = 0
    elapsed: float = 0.0
    field: str = ""  # the field compared in the input (detected or given)


def turn_text(obj: dict[str, Any], field: str) -> str | None:
    """The text `field` addresses in a record, or None (then `problem` says why)."""
    if "." not in field or field in obj:
        value = obj.get(field)
        return value if isinstance(value, str) else None
    key, role = field.split(".", 1)
    for turn in obj.get(key) or []:
        if isinstance(turn, dict) and speaker(turn) in (role, SAME_ROLE.get(role)):
            return content(turn)
    return None


def speaker(turn: dict[str, Any]) -> object:
    return next((turn[k] for k in ROLE_KEYS if k in turn), None)


def content(turn: dict[str, Any]) -> str | None:
    """A turn's text: a string, or the text parts of OpenAI's list of content parts."""
    value = next((turn[k] for k in TEXT_KEYS if k in turn), None)
    if isinstance(value, list):
        parts = [p.get("text") for p in value if isinstance(p, dict) and p.get("type") == "text"]
        texts = [p for p in parts if isinstance(p, str)]
        return "\n".join(texts) if texts else None
    return value if isinstance(value, str) else None


def problem(obj: dict[str, Any], field: str) -> str:
    if "." not in field or field in obj:
        return "missing" if field not in obj else "not a string"
    key, role = field.split(".", 1)
    if not isinstance(obj.get(key), list):
        return f"missing (no list '{key}')" if key not in obj else f"'{key}' is not a list"
    return f"no '{role}' turn with text in '{key}'"


def detect(obj: object) -> str | None:
    """The field of the first record to compare, from the common dataset formats."""
    if not isinstance(obj, dict):
        return None
    return next((f for f in DETECTED if f.split(".")[0] in obj), None)


def read_records(path: Path, field: str | None) -> tuple[list[tuple[dict[str, Any], str]], str]:
    """Records of a JSONL file or a JSON list, each with its text; and the field compared."""
    items, where = userfiles.read_records(path)
    name = shown(path)
    if field is None:
        field = detect(items[0][1]) if items else DETECTED[0]
        if field is None:
            raise InputError(
                f"{name} {where} 1: no text to compare: none of the fields "
                f"{', '.join(DETECTED)}; name one with --field"
            )
    records = []
    for pos, obj in items:
        value = turn_text(obj, field) if isinstance(obj, dict) else None
        if value is None:
            why = problem(obj, field) if isinstance(obj, dict) else "the item is not an object"
            raise InputError(f"{name} {where} {pos}: field '{field}': {why}")
        records.append((obj, value))
    return records, field


def check_streams(src: Path, out: Path, rejected: Path | None, against: Path | None) -> None:
    if is_std(src) and is_std(against):
        raise ConfigError("only one input can be standard input (-)")
    if is_std(out) and is_std(rejected):
        raise ConfigError("--out and --rejected cannot both be standard output (-)")


def dedup_file(
    src: Path,
    out: Path,
    field: str | None,
    threshold: float,
    rejected: Path | None = None,
    against: Path | None = None,
) -> DedupReport:
    """Keep each record whose field is ROUGE-L <= threshold against all kept before it."""
    started = time.monotonic()
    check_streams(src, out, rejected, against)
    records, used = read_records(src, field)
    pool = [text for _, text in read_records(against, field)[0]] if against else []
    texts = [text for _, text in records]
    results = list(dedup(texts, threshold, pool))
    report = DedupReport(total=len(records), field=used)
    kept = [obj for (obj, _), r in zip(records, results, strict=True) if r.kept]
    report.kept = len(kept)
    if out.suffix == ".json":
        write_json_list(out, kept)
    else:
        write_jsonl(out, kept)
    if rejected is not None:
        dropped = []
        for (obj, _), r in zip(records, results, strict=True):
            if not r.kept:
                similar = pool[r.match] if r.in_against else texts[r.match]
                dropped.append({**obj, "_most_similar": similar, "_rouge_l": r.score})
        write_jsonl(rejected, dropped)
    report.elapsed = time.monotonic() - started
    return report
