"""Where a pool's data came from: models, dates, tokens, cost and settings, read from run.json
(with the cache's spend journal folded in) and the pool's copy of the seeds. Never the key:
run.json has none, and a server shows as its host only."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import urlsplit

from selfinstruct.config import STAGES
from selfinstruct.store.manifest import with_spend
from selfinstruct.store.pool import Pool

OPENAI_HOST = "api.openai.com"
GENERATE_KEYS = ("examples", "machine_examples", "new_per_request", "rouge_threshold")


def provenance(pool: Pool) -> list[tuple[str, str]]:
    """(label, value) rows, in the order a reader asks: who made it, when, at what cost, how."""
    data = with_spend(pool)
    stages = {s: data["stages"][s] for s in STAGES if s in data["stages"]}
    rows = model_rows(stages)
    started = [e["started"] for e in stages.values() if e.get("started")]
    updated = [e["updated"] for e in stages.values() if e.get("updated")]
    if started or updated:
        rows.append(("made", f"{min(started, default='-')} to {max(updated, default='-')}"))
    rows += spend_rows(stages)
    gen = stages.get("generate", {})
    if gen.get("generate"):
        rows.append(("stage 1 settings", generate_text(gen)))
    refused = {
        k: v
        for e in stages.values()
        for k, v in ((e.get("usage") or {}).get("dropped") or {}).items()
    }
    rows += [(f"refused {name}", why) for name, why in sorted(refused.items())]
    rows.append(("seed tasks", seeds_text(pool)))
    versions = data.get("versions") or {}
    if versions:
        shown = ("selfinstruct", "openai", "genai-prices", "python")
        rows.append(("versions", ", ".join(f"{k} {versions[k]}" for k in shown if k in versions)))
    return rows


def model_name(pool: Pool) -> str | None:
    """The model that wrote stage 1's instructions (else any stage's), if run.json says."""
    stages = with_spend(pool)["stages"]
    for stage in STAGES:
        model = ((stages.get(stage) or {}).get("settings") or {}).get("model")
        if model:
            return str(model)
    return None


def model_rows(stages: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    described = {s: describe(e.get("settings") or {}) for s, e in stages.items()}
    described = {s: d for s, d in described.items() if d}
    if not described:
        return [("model", "unknown (no run.json)")]
    if len(set(described.values())) == 1:
        return [("model", next(iter(described.values())))]
    return [(f"{stage} model", text) for stage, text in described.items()]


def describe(settings: dict[str, Any]) -> str:
    """ "gpt-4o-mini (chat API, api.openai.com)"."""
    if not settings.get("model"):
        return ""
    url = settings.get("base_url")
    host = (urlsplit(url).hostname or url) if url else OPENAI_HOST
    where = "a local llama.cpp server" if settings.get("local") else host
    return f"{settings['model']} ({settings.get('api', 'chat')} API, {where})"


def spend_rows(stages: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    totals = {s: e.get("totals") or {} for s, e in stages.items()}
    totals = {s: t for s, t in totals.items() if t.get("requests")}
    if not totals:
        return []
    rows = []
    for stage, t in totals.items():
        rows.append((f"{stage} tokens", tokens_text(t)))
    costs = [t.get("cost") for t in totals.values()]
    known = [float(c) for c in costs if c is not None]
    cost = f"${sum(known):.4f}" if len(known) == len(costs) else "unknown (no prices for the model)"
    batched = sum(int(t.get("batched") or 0) for t in totals.values())
    requests = sum(int(t.get("requests") or 0) for t in totals.values())
    extra = f", {batched} of them through a batch at half price" if batched else ""
    rows.append(("cost", f"{cost} for {requests} requests{extra}"))
    return rows


def tokens_text(t: dict[str, Any]) -> str:
    prompt, cached = int(t.get("prompt_tokens") or 0), int(t.get("cached_tokens") or 0)
    share = f" ({cached / prompt:.0%} cached)" if cached and prompt else ""
    return (
        f"{t.get('requests', 0)} requests, {prompt} prompt{share} + "
        f"{t.get('completion_tokens', 0)} completion"
    )


def generate_text(entry: dict[str, Any]) -> str:
    g, sampling = entry.get("generate") or {}, entry.get("sampling") or {}
    parts = [f"{k} {g[k]}" for k in GENERATE_KEYS if k in g]
    parts += [f"{k} {v}" for k, v in sampling.items()]
    if entry.get("seed") is not None:
        parts.append(f"seed {entry['seed']}")
    prompts = entry.get("prompts") or {}
    parts += [f"prompt {name} sha256 {digest[:12]}" for name, digest in prompts.items()]
    return ", ".join(parts)


def seeds_text(pool: Pool) -> str:
    if not pool.seeds.exists():
        return "none"
    data = pool.seeds.read_bytes()
    count = sum(1 for line in data.splitlines() if line.strip())
    return f"{count} in {pool.seeds.name} (sha256 {hashlib.sha256(data).hexdigest()[:12]})"
