"""Token prices for known models, in USD per million tokens (input, output)."""

from __future__ import annotations

BATCH_DISCOUNT = 0.5  # the Batch API charges half the synchronous price

# Published list prices; pass --price-in/--price-out for anything else or when they change.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-3.5-turbo": (0.50, 1.50),
    "gpt-3.5-turbo-instruct": (1.50, 2.00),
    "davinci-002": (2.00, 2.00),
    "babbage-002": (0.40, 0.40),
}


def price_for(
    model: str, price_in: float | None, price_out: float | None
) -> tuple[float, float] | None:
    """Explicit prices win; else the table (dated snapshots match their base name); else None."""
    if price_in is not None or price_out is not None:
        return (price_in or 0.0, price_out or 0.0)
    name = model.split("/")[-1]
    for known in sorted(PRICES, key=len, reverse=True):
        if name == known or name.startswith(known + "-20"):
            return PRICES[known]
    return None


def cost(
    prices: tuple[float, float] | None,
    prompt_tokens: int,
    completion_tokens: int,
    batch: bool = False,
) -> float | None:
    """USD for one response; batch requests (OpenAI Batch API) cost `BATCH_DISCOUNT` of that."""
    if prices is None:
        return None
    full = (prompt_tokens * prices[0] + completion_tokens * prices[1]) / 1_000_000
    return full * BATCH_DISCOUNT if batch else full
