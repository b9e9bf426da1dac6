"""`selfinstruct status`: what is done and pending per stage, what it cost, who holds the lock."""

from __future__ import annotations

from collections import Counter
from typing import Any

from selfinstruct.models import (
    Failure,
)
from selfinstruct.store import manifest
from selfinstruct.store.pool import Pool, iter_jsonl, open_batches, torn_tail


def pool_status(pool: Pool) -> dict[str, Any]:
    """A JSON-ready summary; reads the pool without taking its lock."""
    work = pool.work()
    classes = {i: c.is_classification for i, c in work.classes.items()}
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
        "lock": pool.lock.holder(),
        # torn last lines (left out above; the next run that takes the lock cuts them off)
        "torn": {str(path): n for path in pool.jsonl_files() if (n := torn_tail(path))},
    }
