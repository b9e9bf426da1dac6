"""Token prices in USD per million tokens: prompt, cached prompt, and completion.

From `genai-prices` (the pydantic team's price data, bundled in the package and read offline:
this module never starts its network updater), found by model name and, when --base-url names
a known provider (OpenRouter, Groq, Together, Azure...), by that provider's price list. Models
it does not know (the legacy completions models), and Python 3.10 where it does not install,
fall back to the short table below. --price-in / --price-out / --price-cached override each part.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

BATCH_DISCOUNT = 0.5  # the Batch API charges half the synchronous price

# The fallback: (prompt, completion, cached prompt or None when the model gets no discount).
PRICES: dict[str, tuple[float, float, float | None]] = {
    "gpt-4o-mini": (0.15, 0.60, 0.075),
    "gpt-4o": (2.50, 10.00, 1.25),
    "gpt-4.1": (2.00, 8.00, 0.50),
    "gpt-4.1-mini": (0.40, 1.60, 0.10),
    "gpt-4.1-nano": (0.10, 0.40, 0.025),
    "gpt-3.5-turbo": (0.50, 1.50, None),
    "gpt-3.5-turbo-instruct": (1.50, 2.00, None),
    "davinci-002": (2.00, 2.00, None),
    "babbage-002": (0.40, 0.40, None),
}


@dataclass(frozen=True)
class Prices:
    """USD per million tokens, and where they came from (for the manifest and `--dry-run`)."""

    input: float
    output: float
    cached_input: float  # a prompt token the server read from its cache
    source: str  # "genai-prices <version> (<provider>)", "built-in table", "--price-in/..."

    def describe(self) -> str:
        return (
            f"${self.input:g} prompt, ${self.cached_input:g} cached prompt, "
            f"${self.output:g} completion per 1M tokens ({self.source})"
        )


def price_for(
    model: str,
    price_in: float | None,
    price_out: float | None,
    price_cached: float | None = None,
    base_url: str | None = None,
) -> Prices | None:
    """The flags over the price data: each flag given replaces its part; with no data for the
    model, a part not given is 0 (a cached token then costs the prompt price). None: no flag
    and no data (the cost is unknown)."""
    found = known_prices(model, base_url)
    if price_in is None and price_out is None and price_cached is None:
        return found
    base = found or Prices(0.0, 0.0, price_in or 0.0, "")
    given = Prices(
        base.input if price_in is None else price_in,
        base.output if price_out is None else price_out,
        base.cached_input if price_cached is None else price_cached,
        "--price-in/--price-out/--price-cached" + (f" over {found.source}" if found else ""),
    )
    if found is None and price_cached is None:
        given = replace(given, cached_input=given.input)
    return given


@functools.cache
def known_prices(model: str, base_url: str | None = None) -> Prices | None:
    """The price data's prices for the model (at its provider when the URL names one), else the
    table's (dated snapshots match their base name), else None."""
    return library_prices(model, base_url) or table_prices(model)


def table_prices(model: str) -> Prices | None:
    name = model.split("/")[-1]
    for known in sorted(PRICES, key=len, reverse=True):
        if name == known or name.startswith(known + "-20"):
            prompt, completion, cached = PRICES[known]
            cached_input = prompt if cached is None else cached
            return Prices(prompt, completion, cached_input, "built-in table")
    return None


def library_prices(model: str, base_url: str | None) -> Prices | None:
    """Prices from genai-prices' bundled data, priced per 1,000 tokens (the lowest tier of a
    tiered model: Self-Instruct's prompts are short). Imported here: it takes ~0.5 s."""
    try:
        from genai_prices import Usage, __version__, calc_price
    except ImportError:  # Python 3.10: the package needs 3.11
        return None
    for url in (base_url, None) if base_url else (None,):
        try:
            prompt = calc_price(Usage(input_tokens=1000), model, provider_api_url=url)
            cached = calc_price(
                Usage(input_tokens=1000, cache_read_tokens=1000), model, provider_api_url=url
            )
            completion = calc_price(Usage(output_tokens=1000), model, provider_api_url=url)
        except LookupError:
            continue
        return Prices(
            float(prompt.input_price) * 1000,
            float(completion.output_price) * 1000,
            float(cached.input_price) * 1000,
            f"genai-prices {__version__}, {prompt.provider.id} {prompt.model.id}",
        )
    return None


def cost(
    prices: Prices | None,
    prompt_tokens: int,
    completion_tokens: int,
    cached_tokens: int = 0,
    batch: bool = False,
) -> float | None:
    """USD for one response: its cached prompt tokens (part of `prompt_tokens`, as the usage
    reports them) at the cached price; batch requests (the Batch API) at `BATCH_DISCOUNT`."""
    if prices is None:
        return None
    cached = min(max(cached_tokens, 0), prompt_tokens)
    full = (
        (prompt_tokens - cached) * prices.input
        + cached * prices.cached_input
        + completion_tokens * prices.output
    ) / 1_000_000
    return full * BATCH_DISCOUNT if batch else full
