"""`selfinstruct mix`: several instruction datasets into one training set, by shares or counts.

Each source is read whole (JSONL, a JSON list, Parquet; the suffixes are in `READERS`),
each record brought to instruction / input / output (Alpaca and Dolly names, or a chat record's
first user and assistant turns), shuffled with a seed of its own, and taken in that order until
its count is met. A record whose prompt (instruction and input) scores above the ROUGE-L
threshold against a record already taken, from an earlier source or its own, is dropped: the
first source named wins. The mix is shuffled, each record carrying its `source`.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfinstruct.errors import ConfigError, InputError
from selfinstruct.method.similarity import dedup
from selfinstruct.store.pool import atomic_jsonl, write_atomic
from selfinstruct.store.userfiles import read_records

Located = tuple[str, dict[str, Any]]  # ("line 3", record)
INSTRUCTION = ("instruction", "prompt", "question")
INPUT = ("input", "context")
OUTPUT = ("output", "response", "answer", "completion")
USER, ASSISTANT = ("user", "human"), ("assistant", "gpt", "bot", "model")
_AMOUNT = re.compile(r"^(?:\d+|\d*\.\d+)$")


@dataclass
class Source:
    """One positional argument: [NAME=]FILE[:SHARE or :COUNT]."""

    name: str
    path: Path
    share: float | None = None
    count: int | None = None


@dataclass
class SourceReport:
    name: str
    available: int = 0
    wanted: int = 0
    kept: int = 0
    duplicates: int = 0  # near-duplicates met before the count was reached
    multi_turn: int = 0  # chat records of which only the first exchange was taken
    whole: bool = False  # no count or share: all the file has, less its near-duplicates

    @property
    def short(self) -> int:
        """How far below its count or share the source fell (it ran out of records)."""
        return 0 if self.whole else self.wanted - self.kept


@dataclass
class MixJob:
    sources: list[Source]
    out: Path
    total: int | None = None
    seed: int = 0
    threshold: float = 0.7


@dataclass
class MixReport:
    sources: list[SourceReport] = field(default_factory=list)
    written: int = 0
    elapsed: float = 0.0


def parse_source(text: str) -> Source:
    """ "ours=dataset.jsonl:0.6" -> Source("ours", dataset.jsonl, share=0.6)."""
    name, sep, rest = text.partition("=")
    if not sep or "/" in name or not name:
        name, rest = "", text
    path_text, colon, amount = rest.rpartition(":")
    if not colon or not _AMOUNT.match(amount):
        path_text, amount = rest, ""
    path = Path(path_text)
    source = Source(name or path.stem, path)
    if not amount:
        return source
    if "." in amount:
        source.share = float(amount)
        if not 0 < source.share <= 1:
            raise ConfigError(f"{text}: a share must be above 0 and at most 1")
    else:
        source.count = int(amount)
    return source


def wanted_counts(sources: list[Source], sizes: list[int], total: int | None) -> list[int]:
    """How many records each source gives: its count, its share of --total, or all it has."""
    shares = [s.share for s in sources if s.share is not None]
    if shares and total is None:
        raise ConfigError("shares (FILE:0.6) need --total N; or give counts (FILE:12000)")
    if shares and len(shares) != len(sources):
        raise ConfigError(
            "give every source a share, or none: a mix of shares and counts is ambiguous"
        )
    if shares:
        assert total is not None
        if abs(sum(shares) - 1) > 1e-6:
            raise ConfigError(f"the shares add up to {sum(shares):g}; make them add up to 1")
        return apportion(shares, total)
    if total is not None:
        raise ConfigError("--total goes with shares (FILE:0.6); with counts it is their sum")
    return [
        s.count if s.count is not None else size for s, size in zip(sources, sizes, strict=True)
    ]


def apportion(shares: list[float], total: int) -> list[int]:
    """Counts in proportion to `shares` summing to `total` (largest remainder, ties by order)."""
    exact = [share * total for share in shares]
    counts = [int(x) for x in exact]
    order = sorted(range(len(shares)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def read_file(path: Path) -> Iterator[Located]:
    items, where = read_records(path)
    for pos, obj in items:
        yield f"{where} {pos}", obj


# The formats a source may have (store.userfiles.read_records reads them all).
READERS: dict[str, Callable[[Path], Iterator[Located]]] = {
    ".jsonl": read_file,
    ".json": read_file,
    ".parquet": read_file,
}


def read_source(path: Path) -> list[tuple[dict[str, str], bool]]:
    """The records of a file as instruction/input/output, each with whether it was multi-turn."""
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        known = ", ".join(sorted(READERS))
        raise InputError(f"{path}: unknown format '{path.suffix}'; use one of {known}")
    return [normalise(obj, f"{path} {where}") for where, obj in reader(path)]


def normalise(obj: Any, where: str) -> tuple[dict[str, str], bool]:
    if not isinstance(obj, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    turns = obj.get("messages", obj.get("conversations"))
    if turns is not None:
        return chat_record(turns, where)
    record = {
        "instruction": text_field(obj, INSTRUCTION, where),
        "input": text_field(obj, INPUT, where, required=False),
        "output": text_field(obj, OUTPUT, where),
    }
    return record, False


def text_field(
    obj: dict[str, Any], names: tuple[str, ...], where: str, required: bool = True
) -> str:
    for name in names:
        if name in obj:
            value = obj[name]
            if value is None and not required:
                return ""
            if not isinstance(value, str):
                raise InputError(f"{where}: field '{name}': not a string")
            return value
    if required:
        raise InputError(f"{where}: field '{names[0]}': missing (or any of {', '.join(names[1:])})")
    return ""


def chat_record(turns: Any, where: str) -> tuple[dict[str, str], bool]:
    """The first user turn and the assistant turn after it (OpenAI or ShareGPT names)."""
    if not isinstance(turns, list):
        raise InputError(f"{where}: field 'messages': not a list")
    said: list[tuple[str, str]] = []
    for i, turn in enumerate(turns):
        role = turn.get("role", turn.get("from")) if isinstance(turn, dict) else None
        content = turn.get("content", turn.get("value")) if isinstance(turn, dict) else None
        if not isinstance(role, str) or not isinstance(content, str):
            raise InputError(f"{where}: field 'messages' turn {i + 1}: needs a role and a text")
        said.append((role.lower(), content))
    users = [i for i, (role, _) in enumerate(said) if role in USER]
    if not users or users[0] + 1 >= len(said) or said[users[0] + 1][0] not in ASSISTANT:
        raise InputError(f"{where}: field 'messages': no user turn followed by an assistant turn")
    first = users[0]
    record = {"instruction": said[first][1], "input": "", "output": said[first + 1][1]}
    return record, len(users) > 1


def prompt_text(record: dict[str, str]) -> str:
    return (
        f"{record['instruction']}\n{record['input']}" if record["input"] else record["instruction"]
    )


def mix(job: MixJob) -> MixReport:
    """Sample each source, drop cross-source near-duplicates (first source wins), write."""
    started = time.monotonic()
    names = [s.name for s in job.sources]
    if len(set(names)) != len(names):
        raise ConfigError("two sources have the same name; name them: NAME=FILE")
    loaded = [read_source(s.path) for s in job.sources]
    wanted = wanted_counts(job.sources, [len(records) for records in loaded], job.total)
    report = MixReport()
    taken: list[dict[str, str]] = []
    for source, records, want in zip(job.sources, loaded, wanted, strict=True):
        whole = source.share is None and source.count is None
        part = SourceReport(source.name, available=len(records), wanted=want, whole=whole)
        report.sources.append(part)
        taken += take(records, want, job, part, [prompt_text(r) for r in taken])
    random.Random(f"{job.seed}:mix").shuffle(taken)
    write(job.out, taken)
    report.written, report.elapsed = len(taken), time.monotonic() - started
    return report


def take(
    records: list[tuple[dict[str, str], bool]],
    want: int,
    job: MixJob,
    part: SourceReport,
    earlier: list[str],
) -> list[dict[str, str]]:
    """Up to `want` records of one source in its seeded order, skipping near-duplicates."""
    order = list(range(len(records)))
    random.Random(f"{job.seed}:{part.name}").shuffle(order)
    texts = (prompt_text(records[i][0]) for i in order)
    out: list[dict[str, str]] = []
    for i, verdict in zip(order, dedup(texts, job.threshold, earlier), strict=False):
        if len(out) >= want:
            break
        if not verdict.kept:
            part.duplicates += 1
            continue
        record, multi = records[i]
        out.append({**record, "source": part.name})
        part.multi_turn += multi
    part.kept = len(out)
    return out


def write(out: Path, records: list[dict[str, str]]) -> None:
    if out.suffix == ".json":
        write_atomic(out, json.dumps(records, ensure_ascii=False, indent=2) + "\n")
        return
    with atomic_jsonl(out) as put:
        for record in records:
            put(record)
