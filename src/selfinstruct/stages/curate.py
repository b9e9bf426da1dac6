"""`curate`: a judge scores every instance 1-5 with our rubric (prompts/curate.txt), as in
self-curation (Li et al., 2023); `filter --min-score K` then keeps the best (docs/judge.md).

Scores go to POOL/curation.jsonl, one per (instance, judge); a re-run asks only for what the
judge has not scored. A dataset file (Alpaca JSON or JSONL) is scored the same way, with the
pool directory holding its cache and scores, and its kept records written with `_score`.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfinstruct.config import JudgeSettings, Settings
from selfinstruct.errors import InputError
from selfinstruct.method.judging import parse_reason, parse_score
from selfinstruct.method.prompts import Template, load_template
from selfinstruct.models import Curation
from selfinstruct.stages.base import StageReport, llm_session
from selfinstruct.stages.judge import (
    Asked,
    Item,
    Judge,
    JudgeWorker,
    run_judge,
    unique,
    verdicts,
)
from selfinstruct.store.pool import Pool, atomic_jsonl, iter_jsonl, write_atomic

STAGE = "curate"
UNSCORED = "unscored"
KINDS = ("classification", "other")
UNSCORED_WARNING = 0.2  # of the replies: the judge is likely not following the rubric


@dataclass
class CurateJob:
    pool: Pool
    llm: Settings  # the generator's; the judge's are `judge.llm(llm)`
    judge: JudgeSettings
    prompts: Path | None = None
    progress: bool = True


@dataclass
class CurateReport(StageReport):
    judge: str = ""
    scores: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> score -> count
    total: int = 0  # instances (a file's records)
    kept: int = 0  # a file's records written to --out


def scorer(llm: Any, template: Template, settings: JudgeSettings) -> Judge[int]:
    return Judge(llm, template, parse_score, settings)


def curation(item: Item, asked: Asked[int], common: dict[str, Any]) -> Curation:
    text = asked.completion.text if asked.completion else ""
    return Curation(**common, score=asked.value, reason=parse_reason(text))


def pool_items(pool: Pool) -> list[Item]:
    """Every instance of the pool's instance sets (stage 4 picks among them)."""
    items = (
        Item.of(
            s.instruction, inst.input, inst.output, task=s.id, is_classification=s.is_classification
        )
        for s in pool.work().instances.values()
        for inst in s.instances
    )
    return unique(items)


def distribution(items: list[Item], scored: dict[str, Curation]) -> dict[str, dict[str, int]]:
    """Counts of 1..5 and unscored (no usable reply yet, or none twice), per kind of task."""
    counts = {kind: Counter({str(s): 0 for s in range(1, 6)} | {UNSCORED: 0}) for kind in KINDS}
    for item in items:
        rec = scored.get(item.id)
        kind = KINDS[0] if item.is_classification else KINDS[1]
        score = rec.score if rec is not None else None
        counts[kind][str(score) if score is not None else UNSCORED] += 1
    return {kind: dict(c) for kind, c in counts.items()}


def judge_items(job: CurateJob, items: list[Item]) -> CurateReport:
    """Score the items the judge has not scored yet; the pool's lock is held by the caller."""
    settings = job.judge.llm(job.llm)
    template = load_template(STAGE, job.prompts)
    pool = job.pool
    with llm_session(pool, settings, STAGE) as llm:
        judge = scorer(llm, template, job.judge)
        done = verdicts(pool, pool.curation, Curation, judge.identity)
        pending = [item for item in items if item.id not in done]
        report = CurateReport(usage=llm.usage, judge=judge.identity, total=len(items))
        report.done_before = len(items) - len(pending)
        worker = JudgeWorker(judge, pool.curation, curation, report)
        run_judge(STAGE, job, llm, worker, pending)
    scored = verdicts(pool, pool.curation, Curation, judge.identity)
    report.scores = distribution(items, scored)
    unparsed = report.counts["unparsed"]
    if unparsed and unparsed >= UNSCORED_WARNING * (unparsed + report.counts["judged"]):
        report.warnings.append(
            f"{unparsed} replies held no 1-5 score even when asked twice: the judge model likely "
            "ignores the rubric's format; try a stronger --judge-model"
        )
    return report


def curate(job: CurateJob) -> CurateReport:
    """Score every instance of the pool that this judge has not scored yet."""
    with job.pool.writing():
        return judge_items(job, pool_items(job.pool))


# -- any dataset file


def read_alpaca(path: Path) -> list[Item]:
    """Records with instruction, input (optional) and output strings, from a JSONL file or a
    JSON list; a bad one names the file, the line (or item) and the field."""
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    with open(path, "rb") as fp:
        head = fp.read(64).lstrip()
    if head.startswith(b"["):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InputError(f"{path}: not a valid JSON list: {e}") from None
        rows: list[tuple[str, Any]] = [(f"item {k}", obj) for k, obj in enumerate(data, 1)]
    else:
        rows = [(f"line {k}", obj) for k, obj in iter_jsonl(path)]
    return [alpaca_item(path, where, obj) for where, obj in rows]


def alpaca_item(path: Path, where: str, obj: Any) -> Item:
    if not isinstance(obj, dict):
        raise InputError(f"{path} {where}: expected a JSON object, got {type(obj).__name__}")
    for name in ("instruction", "input", "output"):
        value = obj.get(name, "" if name == "input" else None)
        if not isinstance(value, str):
            problem = "missing" if value is None and name not in obj else "not a string"
            raise InputError(f"{path} {where}: field '{name}': {problem}")
    return Item.of(obj["instruction"], obj.get("input", ""), obj["output"], record=obj)


def curate_file(job: CurateJob, src: Path, out: Path, min_score: int | None) -> CurateReport:
    """Score a dataset file's records and write those scored `min_score` or more (all scored
    ones without it) to `out` with `_score` and `_reason`; not written while any is missing."""
    items = read_alpaca(src)
    with job.pool.writing():
        report = judge_items(job, unique(items))
        scored = verdicts(job.pool, job.pool.curation, Curation, report.judge)
    report.total = len(items)
    if report.counts["failed"] or report.stopped or report.interrupted:
        return report  # --out is written whole or not at all: the next run finishes it
    kept = []
    for item in items:
        rec = scored.get(item.id)
        if rec is None or rec.score is None or (min_score is not None and rec.score < min_score):
            continue
        kept.append({**item.record, "_score": rec.score, "_reason": rec.reason})
    report.kept = len(kept)
    if out.suffix == ".json":
        write_atomic(out, json.dumps(kept, ensure_ascii=False, indent=2) + "\n")
    else:
        with atomic_jsonl(out) as write:
            for obj in kept:
                write(obj)
    return report
