"""llm/flow.py on a fake clock: AIMD steps, priority slots, the cancel hand-off, the breaker."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import pytest

from selfinstruct.errors import FatalAPIError
from selfinstruct.llm.flow import AdaptiveLimit, Breaker

URL = "http://127.0.0.1:1/v1"


class Clock:
    """time.monotonic for a test: it moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# ---------------------------------------------------------------------------
# AdaptiveLimit: additive increase, multiplicative decrease, ceiling and floor


@pytest.mark.parametrize(
    ("successes", "limit"),
    [
        (0, 8.0),
        (1, 8.125),  # +1/limit a success: +1 per window of `limit` replies
        (2, 8.125 + 1 / 8.125),
        (8, 8.950590647281988),  # one window: just under 9
        (9, 9.062315117700448),
        (200, 16.0),  # never above the ceiling
    ],
)
def test_additive_increase(successes: int, limit: float) -> None:
    flow = AdaptiveLimit(16, clock=Clock())
    flow.cut()
    for _ in range(successes):
        flow.succeeded(0.1)
    assert flow.limit == pytest.approx(limit, abs=1e-12)
    assert flow.cuts == 1 and flow.lowest == 8.0


@pytest.mark.parametrize(
    ("latencies", "advance", "limit"),
    [
        # No reply yet: cuts are paced by MIN_COOLDOWN (0.05 s) alone.
        ([], 0.0, 16.0),
        ([], 0.04, 16.0),
        ([], 0.05, 8.0),
        # A round trip of 0.25 s: a burst of 429s within one round trip halves the limit once.
        ([0.25], 0.24, 16.0),
        ([0.25], 0.25, 8.0),
        # The window is the fastest stage's round trip.
        ([0.5, 0.25], 0.25, 8.0),
        ([0.5, 0.25], 0.24, 16.0),
    ],
)
def test_multiplicative_decrease_on_429_once_per_round_trip(
    latencies: list[float], advance: float, limit: float
) -> None:
    clock = Clock()
    flow = AdaptiveLimit(32, clock=clock)
    for i, latency in enumerate(latencies):
        flow.succeeded(latency, kind=f"stage{i}")
    flow.cut()  # the first 429 always cuts
    assert flow.limit == 16.0
    clock.now += advance
    flow.cut()  # another 429, `advance` seconds later
    assert flow.limit == limit and flow.lowest == limit
    assert flow.cuts == (2 if limit == 8.0 else 1)


@pytest.mark.parametrize(
    ("samples", "cuts"),
    [
        # Each stage is judged against the lowest its own EWMA has been: a slower stage is not
        # a queue, however slow it is next to the others.
        ([("classify", 0.1), ("generate", 2.0), ("generate", 2.0)], 0),
        # EWMA 0.8 * 0.1 + 0.2 * 1.5 = 0.38: not above 4x the lowest (0.1).
        ([("classify", 0.1), ("classify", 1.5)], 0),
        # EWMA 0.8 * 0.1 + 0.2 * 2.0 = 0.48 > 0.4: the server is queueing.
        ([("classify", 0.1), ("classify", 2.0)], 1),
        # The same rise in another stage says nothing about this one.
        ([("classify", 0.1), ("generate", 2.0)], 0),
        # A slow start then a fast reply: the lowest follows the EWMA down, never a lone sample.
        ([("x", 1.0), ("x", 0.01), ("x", 3.0)], 0),  # EWMA 1.0, 0.802, 1.2416: < 4 x 0.802
        # The lowest counts as at least 0.05 s: sub-millisecond replies are not a baseline.
        ([("x", 0.001), ("x", 0.9)], 0),  # EWMA 0.1808 < 4 x 0.05
        ([("x", 0.001), ("x", 1.1)], 1),  # EWMA 0.2208 > 4 x 0.05
    ],
)
def test_multiplicative_decrease_on_latency_per_stage(
    samples: list[tuple[str, float]], cuts: int
) -> None:
    flow = AdaptiveLimit(32, clock=Clock())
    for kind, latency in samples:
        flow.succeeded(latency, kind)
    assert flow.cuts == cuts
    assert flow.limit == (16.0 if cuts else 32.0)


def test_after_a_cut_latency_is_judged_on_fresh_samples() -> None:
    clock = Clock()
    flow = AdaptiveLimit(32, clock=clock)
    flow.succeeded(0.1, "x")
    flow.succeeded(2.0, "x")  # EWMA 0.48 > 4 x 0.1: cut
    assert flow.cuts == 1 and flow.limit == 16.0
    clock.now += 1.0
    flow.succeeded(0.3, "x")  # a fresh EWMA of 0.3, not 0.8 * 0.48 + 0.2 * 0.3 = 0.444
    assert flow.cuts == 1 and flow.limit == 16.0 + 1 / 16.0


@pytest.mark.parametrize(
    ("ceiling", "floor", "limits"),
    [
        (32, 1, [16.0, 8.0, 4.0, 2.0, 1.0, 1.0]),
        (32, 3, [16.0, 8.0, 4.0, 3.0, 3.0, 3.0]),
        (5, 2, [2.5, 2.0, 2.0, 2.0, 2.0, 2.0]),
    ],
)
def test_cuts_stop_at_the_floor(ceiling: int, floor: int, limits: list[float]) -> None:
    clock = Clock()
    flow = AdaptiveLimit(ceiling, floor, clock=clock)
    seen = []
    for _ in limits:
        flow.cut()
        seen.append(flow.limit)
        clock.now += 1.0
    assert seen == limits
    assert flow.summary() == {"ceiling": ceiling, "cuts": len(limits), "lowest": floor}


# ---------------------------------------------------------------------------
# Slots: priorities, growth, cancellation


async def within(awaitable: Awaitable[object]) -> None:
    """A hung slot is a failure, not a hung test."""
    await asyncio.wait_for(awaitable, timeout=2.0)


def served_in_order(ceiling: int, priorities: list[int]) -> list[int]:
    """The order in which waiters of these priorities get a slot, all slots being held first."""
    flow = AdaptiveLimit(ceiling, clock=Clock())
    order: list[int] = []

    async def take(priority: int, hold: asyncio.Event, i: int) -> None:
        async with flow.slot(priority):
            order.append(i)
            await hold.wait()

    async def main() -> None:
        release, gone = asyncio.Event(), asyncio.Event()
        gone.set()  # waiters leave as soon as they are served
        holders = [asyncio.create_task(take(0, release, -1)) for _ in range(ceiling)]
        await asyncio.sleep(0)
        waiters = [asyncio.create_task(take(p, gone, i)) for i, p in enumerate(priorities)]
        await asyncio.sleep(0)
        assert order == [-1] * ceiling and flow.in_use == ceiling
        release.set()
        await within(asyncio.gather(*holders, *waiters))
        assert flow.in_use == 0

    asyncio.run(main())
    return order[ceiling:]


@pytest.mark.parametrize(
    ("priorities", "order"),
    [
        ([0, 0, 0], [0, 1, 2]),  # first come, first served
        ([0, 1, 2], [2, 1, 0]),  # instances before classify before generate
        ([0, 2, 1, 2, 0], [1, 3, 2, 0, 4]),  # by priority, then in order of arrival
        ([1, 0, 1], [0, 2, 1]),
    ],
)
@pytest.mark.parametrize("ceiling", [1, 2])
def test_a_freed_slot_goes_to_the_highest_priority_waiter(
    ceiling: int, priorities: list[int], order: list[int]
) -> None:
    assert served_in_order(ceiling, priorities) == order


def test_a_new_request_queues_behind_waiters_even_with_a_free_slot() -> None:
    flow = AdaptiveLimit(2, clock=Clock())
    flow.in_use, flow.limit = 2, 2.0
    order: list[str] = []

    async def take(name: str, priority: int) -> None:
        async with flow.slot(priority):
            order.append(name)

    async def main() -> None:
        waiter = asyncio.create_task(take("waiting", 0))
        await asyncio.sleep(0)
        flow.in_use = 1  # a slot frees up without waking anyone (as a cut then a release)
        late = asyncio.create_task(take("late", 2))
        await asyncio.sleep(0)
        assert order == []  # the late request did not jump the queue through the free slot
        flow._release()
        await within(asyncio.gather(waiter, late))

    asyncio.run(main())
    assert order == ["late", "waiting"]


async def hold(flow: AdaptiveLimit, release: asyncio.Event) -> None:
    async with flow.slot():
        await release.wait()


def test_growth_wakes_a_waiter_without_a_release() -> None:
    flow = AdaptiveLimit(4, clock=Clock())
    flow.cut()
    flow.cut()  # within the cool-down: still 2
    assert flow.limit == 2.0

    async def main() -> None:
        release = asyncio.Event()
        holders = [asyncio.create_task(hold(flow, release)) for _ in range(3)]
        await asyncio.sleep(0)
        assert flow.in_use == 2
        flow.succeeded(0.1)  # 2.5: still two slots
        await asyncio.sleep(0)
        assert flow.in_use == 2
        flow.succeeded(0.1)  # 2.9
        flow.succeeded(0.1)  # 3.24...: a third slot, for the waiter
        assert flow.in_use == 3
        release.set()
        await within(asyncio.gather(*holders))

    asyncio.run(main())


def test_a_cut_lets_requests_on_the_wire_finish_and_holds_new_ones() -> None:
    flow = AdaptiveLimit(4, clock=Clock())

    async def main() -> None:
        releases = [asyncio.Event() for _ in range(5)]
        holders = [asyncio.create_task(hold(flow, r)) for r in releases]
        await asyncio.sleep(0)
        assert flow.in_use == 4  # the fifth waits
        flow.cut()  # 2 now, 4 in flight
        for done, in_use in enumerate([3, 2, 2], start=0):
            releases[done].set()
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            assert flow.in_use == in_use  # 3 then 2 in use: not below 2; then the fifth's turn
        assert not holders[4].done()
        for r in releases:
            r.set()
        await within(asyncio.gather(*holders))
        assert flow.in_use == 0

    asyncio.run(main())


def test_a_waiter_cancelled_before_its_turn_is_skipped() -> None:
    flow = AdaptiveLimit(1, clock=Clock())
    order: list[str] = []

    async def take(name: str) -> None:
        async with flow.slot():
            order.append(name)

    async def main() -> None:
        async with flow.slot():
            gone = asyncio.create_task(take("gone"))
            kept = asyncio.create_task(take("kept"))
            await asyncio.sleep(0)
            gone.cancel()
            await asyncio.sleep(0)
        await within(kept)
        assert gone.cancelled() and flow.in_use == 0

    asyncio.run(main())
    assert order == ["kept"]


def test_a_slot_handed_to_a_cancelled_waiter_passes_on() -> None:
    flow = AdaptiveLimit(1, clock=Clock())
    order: list[str] = []

    async def take(name: str) -> None:
        async with flow.slot():
            order.append(name)

    async def main() -> None:
        holder = flow.slot()
        await holder.__aenter__()
        first = asyncio.create_task(take("first"))
        second = asyncio.create_task(take("second"))
        await asyncio.sleep(0)
        await holder.__aexit__(None, None, None)  # hands the slot to `first`...
        first.cancel()  # ...which is cancelled before it runs again
        await within(second)
        assert first.cancelled() and flow.in_use == 0

    asyncio.run(main())
    assert order == ["second"]


# ---------------------------------------------------------------------------
# Breaker: consecutive failures, their time span, and a server never reached

REFUSED = "connection refused"
GIVE_UP = "; the pool is saved, re-run to continue"


@pytest.mark.parametrize(
    ("events", "trips_at", "message"),
    [
        # (seconds since the start, what happened): "ok", "503", or "refused" (never connected)
        ([(0, "503"), (1, "503"), (2, "503")], None, ""),
        (
            [(0, "503"), (1, "503"), (2, "503"), (3, "503")],
            3,
            f"4 consecutive failures over 3s, the last 503 from {URL}{GIVE_UP}",
        ),
        ([(0, "503"), (1, "503"), (2, "503"), (3, "ok"), (4, "503"), (5, "503")], None, ""),
        # The time span, from the first failure of the streak.
        ([(0, "503"), (59.9, "503")], None, ""),
        (
            [(0, "503"), (60, "503")],
            1,
            f"2 consecutive failures over 60s, the last 503 from {URL}{GIVE_UP}",
        ),
        ([(0, "503"), (50, "ok"), (60, "503"), (119, "503")], None, ""),  # the span restarts
        # A server never reached: about 5 s, whatever the count and span allow.
        ([(0, "refused"), (1, "refused"), (4.9, "refused")], None, ""),
        (
            [(0, "refused"), (5.0, "refused")],
            1,
            f"cannot reach {URL}: APIConnectionError ({REFUSED}), 2 tries over 5s; "
            "is the server running? Start it or fix --base-url",
        ),
        # Once reached, a refused connection is an ordinary failure: a restarting server.
        ([(0, "ok"), (1, "refused"), (10, "refused"), (20, "refused")], None, ""),
        ([(0, "503"), (1, "refused"), (10, "refused")], None, ""),
        (
            [(0, "ok"), (1, "refused"), (61, "refused")],
            2,
            f"2 consecutive failures over 60s, the last APIConnectionError ({REFUSED}) "
            f"from {URL}{GIVE_UP}",
        ),
    ],
)
def test_breaker(events: list[tuple[float, str]], trips_at: int | None, message: str) -> None:
    clock = Clock()
    start = clock.now
    breaker = Breaker(max_failures=4, max_seconds=60, clock=clock)
    for i, (at, what) in enumerate(events):
        clock.now = start + at
        if i == trips_at:
            with pytest.raises(FatalAPIError) as raised:
                fail(breaker, what)
            assert str(raised.value) == message
            return
        if what == "ok":
            breaker.succeeded()
        else:
            fail(breaker, what)
    assert trips_at is None


def fail(breaker: Breaker, what: str) -> None:
    if what == "refused":
        breaker.failed(f"APIConnectionError ({REFUSED})", URL, REFUSED)
    else:
        breaker.failed(what, URL)


@pytest.mark.parametrize(
    ("why", "hint"),
    [
        (REFUSED, "is the server running? Start it or fix --base-url"),
        ("name not resolved", "check the host name in --base-url"),
    ],
)
def test_an_unreachable_server_trips_on_the_count_too(why: str, hint: str) -> None:
    breaker = Breaker(max_failures=2, max_seconds=60, clock=Clock())
    breaker.failed("APIConnectionError", URL, why)
    with pytest.raises(FatalAPIError) as raised:
        breaker.failed("APIConnectionError", URL, why)
    assert str(raised.value) == f"cannot reach {URL}: APIConnectionError, 2 tries over 0s; {hint}"
