"""End-of-stage summaries: what was done, what was dropped and why, what it cost."""

from __future__ import annotations

from collections import Counter

from selfinstruct.llm import Usage


def table(rows: list[tuple[str, str]]) -> str:
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"  {label:<{width}}  {value}" for label, value in rows)


def usage_rows(usage: Usage) -> list[tuple[str, str]]:
    cost = "n/a (unknown model prices; set --price-in/--price-out)"
    if usage.cost is not None:
        cost = f"${usage.cost:.4f}"
    rows = [
        ("requests", f"{usage.requests} sent, {usage.cached} from cache, {usage.failed} failed"),
        ("retries", str(usage.retries)),
        ("tokens", f"{usage.prompt_tokens} prompt + {usage.completion_tokens} completion"),
        ("cost", cost),
    ]
    if usage.errors:
        errors = ", ".join(f"{name} x{n}" for name, n in sorted(usage.errors.items()))
        rows.insert(2, ("errors", errors))
    return rows


def reason_rows(rejected: Counter[str]) -> list[tuple[str, str]]:
    return [(f"  {reason}", str(n)) for reason, n in rejected.most_common()]
