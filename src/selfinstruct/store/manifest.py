"""The run manifest (`run.json`): resolved settings, versions, prompt hashes, counters, usage."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict
from importlib import metadata
from typing import Any

from selfinstruct.clock import now
from selfinstruct.models import Usage
from selfinstruct.store.cache import spend_since
from selfinstruct.store.pool import Pool, write_atomic


def outcome(stopped: str | None = None, incomplete: str | None = None) -> str:
    """How a stage or run ended, as run.json says it (errors are worded where they are caught)."""
    if stopped:
        return f"stopped: {stopped}"
    return f"incomplete: {incomplete}" if incomplete else "done"


PAID = (
    "requests",
    "batched",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost",
)  # from the journal


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for dist in ("selfinstruct", "openai", "rouge-score", "typer", "pydantic", "genai-prices"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "not installed"
    return found


def load(pool: Pool) -> dict[str, Any]:
    if not pool.manifest.exists():
        return {"stages": {}}
    try:
        data: dict[str, Any] = json.loads(pool.manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"stages": {}}
    data.setdefault("stages", {})
    return data


def record_stage(pool: Pool, stage: str, entry: dict[str, Any], usage: Usage | None) -> None:
    """Save this run of a stage. Totals across runs: what was paid from the cache's spend
    journal (killed runs included), the other counters (cached, retries...) from `usage`."""
    data = with_spend(pool)
    previous = data["stages"].get(stage, {})
    totals: dict[str, Any] = dict(previous.get("totals", {}))
    if usage is not None:
        for name, value in asdict(usage).items():
            if name not in PAID and isinstance(value, int) and not isinstance(value, bool):
                totals[name] = (totals.get(name) or 0) + value
    data["versions"] = versions()
    data["stages"][stage] = {
        **entry,
        "usage": asdict(usage) if usage else None,
        "totals": totals,
        "updated": now(),
    }
    write_atomic(pool.manifest, json.dumps(data, indent=2, sort_keys=True) + "\n")


def with_spend(pool: Pool) -> dict[str, Any]:
    """run.json with what the cache's spend journal holds beyond `spent_upto` (the journal row
    run.json last counted) added to each stage's totals: the whole spend, even mid-run."""
    data = load(pool)
    spent, data["spent_upto"] = spend_since(pool.cache, int(data.get("spent_upto", 0)))
    for stage, paid in spent.items():
        totals = data["stages"].setdefault(stage, {}).setdefault("totals", {})
        unknown = paid["cost"] is None or ("cost" in totals and totals["cost"] is None)
        for name, value in paid.items():
            totals[name] = round((totals.get(name) or 0) + (value or 0), 9)
        if unknown:  # once a response's price was unknown, the total is unknown
            totals["cost"] = None
    return data


def record_run(pool: Pool, info: dict[str, Any]) -> None:
    """The `run` command's target and last outcome (what `status` shows and cron continues)."""
    data = load(pool)
    data["run"] = {**data.get("run", {}), **info}
    write_atomic(pool.manifest, json.dumps(data, indent=2, sort_keys=True) + "\n")


def record_local(pool: Pool, info: dict[str, Any]) -> None:
    """`--local`: the model file (and its SHA-256) and the server that answered this pool."""
    data = load(pool)
    data["local"] = info
    write_atomic(pool.manifest, json.dumps(data, indent=2, sort_keys=True) + "\n")


def record_preset(pool: Pool, preset: str) -> None:
    """The pool's recipe (`--preset`); every preset it ever ran is kept in `presets`."""
    data = load(pool)
    data["preset"] = preset
    data["presets"] = sorted({*data.get("presets", []), preset})
    write_atomic(pool.manifest, json.dumps(data, indent=2, sort_keys=True) + "\n")
