"""`review`: the paper's quality table (Wang et al. 2022, Table 2), by an LLM judge instead of
an author. A seeded sample of N instances of a dataset gets the paper's four questions
(prompts/review.txt, our wording); the table gives each share of yes with a 95% Wilson
interval next to the paper's figures. `--compare` puts two datasets side by side, with the
same sample size, seed and judge (docs/judge.md).

Answers go to POOL/review.jsonl, one per (instance, judge): an instance in both datasets of a
comparison, or reviewed again, is asked once. The last table is kept in run.json, where
`stats --json` and `report` find it.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfinstruct.config import JudgeSettings, Settings
from selfinstruct.method.judging import parse_answers, wilson
from selfinstruct.method.prompts import load_template
from selfinstruct.models import Review
from selfinstruct.stages.base import StageReport, llm_session
from selfinstruct.stages.curate import read_alpaca
from selfinstruct.stages.judge import (
    Asked,
    Item,
    Judge,
    JudgeWorker,
    run_judge,
    unique,
    verdicts,
)
from selfinstruct.store import manifest
from selfinstruct.store.pool import Pool, write_atomic

STAGE = "review"
SAMPLE = 200  # as the paper did
QUESTIONS = ("valid_task", "appropriate_input", "correct_output", "all_valid")
ASKED = {
    "valid_task": "the instruction describes a valid task",
    "appropriate_input": "the input is appropriate for the instruction",
    "correct_output": "the output is a correct and acceptable response",
    "all_valid": "all fields are valid",
}
PAPER = {"valid_task": 0.92, "appropriate_input": 0.79, "correct_output": 0.58, "all_valid": 0.54}
EXAMPLES = 3  # failures kept per question for the report


@dataclass
class ReviewJob:
    pool: Pool
    llm: Settings
    judge: JudgeSettings
    datasets: list[Path]  # one, or two with --compare
    sample: int = SAMPLE
    seed: int = 0
    prompts: Path | None = None
    progress: bool = True


@dataclass
class ReviewReport(StageReport):
    judge: str = ""
    columns: list[dict[str, Any]] = field(default_factory=list)  # one table per dataset


def four(text: str) -> list[tuple[bool, str]] | None:
    return parse_answers(text, len(QUESTIONS))


def review_record(
    item: Item, asked: Asked[list[tuple[bool, str]]], common: dict[str, Any]
) -> Review:
    answers = asked.value
    return Review(
        **common,
        answers=[yes for yes, _ in answers] if answers else None,
        reasons=[why for _, why in answers] if answers else [],
    )


def sample(items: list[Item], size: int, seed: int) -> list[Item]:
    """A seeded sample of the distinct instances, in the dataset's order."""
    distinct = unique(items)
    if len(distinct) <= size:
        return distinct
    chosen = set(random.Random(seed).sample(range(len(distinct)), size))
    return [item for k, item in enumerate(distinct) if k in chosen]


def table(items: list[Item], found: dict[str, Review]) -> dict[str, Any]:
    """Per question: yes / answered, the share, its Wilson interval, the paper's figure, and a
    few failures (with the judge's reason) for the report."""
    answered = [found[i.id] for i in items if i.id in found and found[i.id].answers is not None]
    rows = []
    for q, name in enumerate(QUESTIONS):
        yes = sum(1 for r in answered if r.answers and r.answers[q])
        low, high = wilson(yes, len(answered))
        failures = [
            {
                "instruction": r.instruction,
                "input": r.input,
                "output": r.output,
                "reason": r.reasons[q] if q < len(r.reasons) else "",
            }
            for r in answered
            if r.answers and not r.answers[q]
        ][:EXAMPLES]
        rows.append(
            {
                "question": name,
                "yes": yes,
                "n": len(answered),
                "share": yes / len(answered) if answered else None,
                "low": low,
                "high": high,
                "paper": PAPER[name],
                "failures": failures,
            }
        )
    return {"sampled": len(items), "unanswered": len(items) - len(answered), "rows": rows}


def review(job: ReviewJob) -> ReviewReport:
    """Ask the four questions of each sampled instance the judge has not answered yet."""
    settings = job.judge.llm(job.llm)
    template = load_template(STAGE, job.prompts)
    samples = [sample(read_dataset(path), job.sample, job.seed) for path in job.datasets]
    pool = job.pool
    with pool.writing(), llm_session(pool, settings, STAGE) as llm:
        judge = Judge(llm, template, four, job.judge)
        done = verdicts(pool, pool.review, Review, judge.identity)
        todo = unique(item for items in samples for item in items)
        pending = [item for item in todo if item.id not in done]
        report = ReviewReport(usage=llm.usage, judge=judge.identity)
        report.done_before = len(todo) - len(pending)
        worker = JudgeWorker(judge, pool.review, review_record, report)
        run_judge(STAGE, job, llm, worker, pending)
        found = verdicts(pool, pool.review, Review, judge.identity)
        for path, items in zip(job.datasets, samples, strict=True):
            report.columns.append({"dataset": str(path), **table(items, found)})
        if not (report.counts["failed"] or report.stopped or report.interrupted):
            save(pool, {"judge": judge.identity, "seed": job.seed, "columns": report.columns})
    return report


def read_dataset(path: Path) -> list[Item]:
    """A dataset's records as judge items (a pool dataset's rows keep their kind of task)."""
    return [
        Item.of(
            i.instruction,
            i.input,
            i.output,
            task=str(i.record.get("id", "")),
            is_classification=i.record.get("is_classification"),
        )
        for i in read_alpaca(path)
    ]


def save(pool: Pool, result: dict[str, Any]) -> None:
    """The last review's tables in run.json (`stats --json`, `report`)."""
    data = manifest.load(pool)
    data["review"] = result
    write_atomic(pool.manifest, json.dumps(data, indent=2, sort_keys=True) + "\n")


def last_review(pool: Pool) -> dict[str, Any] | None:
    found: dict[str, Any] | None = manifest.load(pool).get("review")
    return found
