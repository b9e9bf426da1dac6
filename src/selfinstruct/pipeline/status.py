"""`selfinstruct status`: what is done and pending per stage, what it cost, who holds the lock."""

from __future__ import annotations

from collections import Counter
from typing import Any

from selfinstruct.models import Failure, InstanceSet
from selfinstruct.stages.yields import (
    classify_warnings,
    generate_warnings,
    instances_warnings,
)
from selfinstruct.store import manifest
from selfinstruct.store.pool import Pool, iter_jsonl, open_batches, torn_tail


def pool_status(pool: Pool) -> dict[str, Any]:
    """A JSON-ready summary; reads the pool without taking its lock."""
    work = pool.work()
    asked = {
        i: c for i, c in work.classes.items() if c.preset is None
    }  # alpaca's, backtranslated: not asked
    classes = {i: c.is_classification for i, c in asked.items()}
    sets = list(work.instances.values())
    failures = Counter(f.stage for f in pool.read(pool.failures, Failure))
    data = manifest.with_spend(pool)  # killed runs and the one in progress included
    waiting = open_batches(pool)
    return {
        "pool": str(pool.root),
        "target": data.get("run", {}).get("target"),
        "generate": {"done": len(work.machine), "failures": failures["generate"]},
        "classify": {
            "done": len(classes),
            "pending": len(work.unclassified),
            "yes": sum(v is True for v in classes.values()),
            "no": sum(v is False for v in classes.values()),
            "unparsed": sum(v is None for v in classes.values()),
            "failures": failures["classify"],
            "not_asked": len(work.classes) - len(asked),
        },
        "instances": {
            "done": len(work.instances),
            "pending": len(work.without_instances),
            "instances": sum(len(s.instances) for s in work.instances.values()),
            "failures": failures["instances"],
        },
        "batches": {
            "open": len(waiting),
            "requests": sum(e.requests for e in waiting),
            "stages": sorted({e.stage for e in waiting}),
        },
        "filter": {
            "dataset": sum(1 for _ in iter_jsonl(pool.dataset)) if pool.dataset.exists() else None
        },
        "usage": {stage: entry.get("totals", {}) for stage, entry in data["stages"].items()},
        "last_run": {k: v for k, v in data.get("run", {}).items() if k != "target"} or None,
        "warnings": pool_warnings(pool, data, len(work.machine), list(classes.values()), sets),
        "lock": pool.lock.holder(),
        # torn last lines (left out above; the next run that takes the lock cuts them off)
        "torn": {str(path): n for path in pool.jsonl_files() if (n := torn_tail(path))},
    }


def pool_warnings(
    pool: Pool,
    data: dict[str, Any],
    machine: int,
    classes: list[bool | None],
    sets: list[InstanceSet],
) -> list[str]:
    """The yield checks of stages.yields over the whole pool (replies that left no trace, such
    as stage 1's unparsed ones, are judged only by the run that saw them)."""
    api = next(
        (e["settings"]["api"] for e in data["stages"].values() if "api" in e.get("settings", {})),
        "chat",
    )
    rejected = sum(1 for _ in iter_jsonl(pool.rejected)) if pool.rejected.exists() else 0
    counts = Counter(
        {"yes": classes.count(True), "no": classes.count(False), "unparsed": classes.count(None)}
    )
    for s in sets:
        counts[s.prompt_kind] += 1
        counts[f"{s.prompt_kind}_empty"] += not s.instances
        counts[f"{s.prompt_kind}_cut"] += s.finish_reason == "length"
    return (
        generate_warnings(0, 0, 0, machine + rejected, machine, api)
        + classify_warnings(counts, api)
        + instances_warnings(counts, api)
    )
