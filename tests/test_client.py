"""llm/client.py's waits between tries: Retry-After in each form a server sends it, and the
exponential backoff with its jitter, cap and unreached pace."""

from __future__ import annotations

import calendar
import random
import time
from collections.abc import Callable

import httpx2
import openai
import pytest

from selfinstruct.llm.client import MAX_RETRY_AFTER, delay, retry_after

URL = "http://127.0.0.1:1/v1/chat/completions"
DATE = "Wed, 21 Oct 2026 07:28:00 GMT"
AT = 1792567680.0  # DATE as a POSIX timestamp


def rate_limited(headers: dict[str, str]) -> openai.RateLimitError:
    """A 429 as the openai client raises it, with these response headers."""
    response = httpx2.Response(429, headers=headers, request=httpx2.Request("POST", URL))
    return openai.RateLimitError("rate limited", response=response, body=None)


def refused() -> openai.APIConnectionError:
    """A connection the server refused, as transport.Clients raises it."""
    try:
        raise openai.APIConnectionError(request=httpx2.Request("POST", URL)) from (
            ConnectionRefusedError("connection refused")
        )
    except openai.APIConnectionError as e:
        return e


@pytest.mark.parametrize(
    ("headers", "now", "seconds"),
    [
        ({}, AT, None),
        ({"Retry-After": "3"}, AT, 3.0),
        ({"retry-after": "0.25"}, AT, 0.25),  # not RFC 9110, but servers send it
        ({"retry-after": "-5"}, AT, 0.0),
        ({"retry-after-ms": "250", "retry-after": "9"}, AT, 0.25),  # the finer one wins
        ({"retry-after-ms": "soon", "retry-after": "2"}, AT, 2.0),
        ({"Retry-After": DATE}, AT - 30, 30.0),  # an HTTP date
        ({"Retry-After": DATE}, AT - 0.5, 0.5),
        ({"Retry-After": DATE}, AT + 10, 0.0),  # already past
        ({"Retry-After": "Wed, 21 Oct 2026 07:28:00 +0200"}, AT - 7200 - 4, 4.0),
        ({"retry-after-ms": "soon", "Retry-After": DATE}, AT - 1, 1.0),
        ({"retry-after": "soon"}, AT, None),
        ({"retry-after": "Wed, 21 Oct 99999 07:28:00 GMT"}, AT, None),
        ({"retry-after": ""}, AT, None),
    ],
)
def test_retry_after(headers: dict[str, str], now: float, seconds: float | None) -> None:
    assert retry_after(rate_limited(headers), now=lambda: now) == seconds


def test_retry_after_of_an_error_without_a_response() -> None:
    assert retry_after(refused()) is None
    assert retry_after(ValueError("not json")) is None


def test_retry_after_reads_the_wall_clock_by_default() -> None:
    at = calendar.timegm((2099, 10, 21, 7, 28, 0))
    before = time.time()
    wait = retry_after(rate_limited({"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"}))
    assert wait is not None and at - time.time() <= wait <= at - before


def low(a: float, b: float) -> float:
    return a


def high(a: float, b: float) -> float:
    return b


@pytest.mark.parametrize(
    ("attempt", "base", "bounds"),
    [
        (0, 1.0, (0.5, 1.0)),  # jitter: between half the step and the step
        (1, 1.0, (1.0, 2.0)),
        (3, 0.5, (2.0, 4.0)),
        (6, 1.0, (32.0, 64.0)),
        (7, 1.0, (60.0, 120.0)),  # the cap, MAX_RETRY_AFTER
        (30, 1.0, (60.0, 120.0)),
        (2, 0.01, (0.02, 0.04)),
    ],
)
def test_backoff_doubles_with_jitter_up_to_the_cap(
    attempt: int, base: float, bounds: tuple[float, float]
) -> None:
    error = rate_limited({})
    got = (delay(error, attempt, base, True, low), delay(error, attempt, base, True, high))
    assert got == bounds


def test_backoff_jitter_is_uniform_over_its_bounds() -> None:
    error = rate_limited({})
    assert delay(error, 0, 1.0, True, random.Random(0).uniform) == 0.9222109257625241
    assert delay(error, 2, 1.0, True, random.Random(0).uniform) == 3.6888437030500962
    random.seed(0)  # the default draws from the random module
    assert delay(error, 0, 1.0, True) == 0.9222109257625241


@pytest.mark.parametrize(
    ("error", "reached", "attempt", "bounds"),
    [
        (refused(), False, 0, (0.5, 1.0)),
        # A server never reached: about a try a second, for the breaker's ~5 s.
        (refused(), False, 4, (0.5, 1.0)),
        # A server that answered before: it is restarting, back off.
        (refused(), True, 4, (8.0, 16.0)),
        # An answer (a 429) is no unreached server, whatever came before.
        (rate_limited({}), False, 4, (8.0, 16.0)),
    ],
)
def test_backoff_for_a_refused_connection(
    error: openai.APIError, reached: bool, attempt: int, bounds: tuple[float, float]
) -> None:
    got = (delay(error, attempt, 1.0, reached, low), delay(error, attempt, 1.0, reached, high))
    assert got == bounds


@pytest.mark.parametrize(
    ("headers", "attempt", "uniform", "seconds"),
    [
        ({"retry-after": "30"}, 0, high, 30.0),  # longer than the backoff: the server's word
        ({"retry-after": "0.2"}, 0, low, 0.5),  # shorter: the backoff
        ({"retry-after": "0"}, 3, low, 4.0),
        ({"retry-after": "500"}, 0, high, MAX_RETRY_AFTER),  # never beyond the cap
        ({"retry-after": "inf"}, 0, low, MAX_RETRY_AFTER),
        ({"retry-after-ms": "1500"}, 0, high, 1.5),
    ],
)
def test_retry_after_overrides_a_shorter_backoff(
    headers: dict[str, str],
    attempt: int,
    uniform: Callable[[float, float], float],
    seconds: float,
) -> None:
    assert delay(rate_limited(headers), attempt, 1.0, True, uniform) == seconds


def test_retry_after_as_a_date_sets_the_delay() -> None:
    error = rate_limited({"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"})
    assert delay(error, 0, 1.0, True, low) == MAX_RETRY_AFTER
