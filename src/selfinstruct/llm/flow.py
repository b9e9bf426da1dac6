"""Traffic control shared by every request of a run: adaptive concurrency and a circuit breaker."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import AsyncIterator, Callable

from selfinstruct.errors import FatalAPIError

MIN_COOLDOWN = 0.05  # a burst of 429s from one window of requests halves the limit once
LATENCY_FACTOR = 4.0  # a latency EWMA this many times its lowest means the server is queueing
UNREACHABLE_SECONDS = 5.0  # a server never reached in this run: refused or unknown for this long
HINTS = {
    "connection refused": "is the server running? Start it or fix --base-url",
    "name not resolved": "check the host name in --base-url",
}


class AdaptiveLimit:
    """AIMD on requests in flight: halve on 429s, timeouts or swelling latency; +1 per window.

    Latency is judged per kind of request (a stage), against the lowest its moving average
    has been: an 8-token classification and a 1024-token list of instructions take different
    times on any server, and one reply shorter than the rest says nothing about queueing.
    """

    def __init__(
        self, ceiling: int, floor: int = 1, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ceiling, self.floor = ceiling, floor
        self._clock = clock
        self.limit = float(ceiling)
        self.in_use = 0
        self.cuts = 0
        self.lowest = float(ceiling)
        self._best: dict[str, float] = {}  # per kind: the lowest its EWMA has been
        self._ewma: dict[str, float] = {}
        self._last_cut = float("-inf")
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @contextlib.asynccontextmanager
    async def slot(self, priority: int = 0) -> AsyncIterator[None]:
        """Hold one of `limit` slots; waiters with a higher priority are served first."""
        if self.in_use < int(self.limit) and not self._waiters:
            self.in_use += 1
        else:
            granted = asyncio.get_running_loop().create_future()
            heapq.heappush(self._waiters, (-priority, next(self._order), granted))
            try:
                await granted
            except asyncio.CancelledError:
                if granted.done() and not granted.cancelled():
                    self._release()  # handed a slot just as it was cancelled: pass it on
                raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        self.in_use -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_use < int(self.limit):
            granted = heapq.heappop(self._waiters)[2]
            if not granted.cancelled():
                self.in_use += 1
                granted.set_result(None)

    def succeeded(self, latency: float, kind: str = "") -> None:
        last = self._ewma.get(kind)
        ewma = self._ewma[kind] = latency if last is None else 0.8 * last + 0.2 * latency
        best = self._best[kind] = min(self._best.get(kind, ewma), ewma)
        if ewma > LATENCY_FACTOR * max(best, 0.05):
            self.cut()
        else:
            self.limit = min(float(self.ceiling), self.limit + 1.0 / self.limit)
            self._wake()

    def summary(self) -> dict[str, int]:
        """For the run's report and run.json: the configured ceiling, how often and how low the
        limit came down."""
        return {"ceiling": self.ceiling, "cuts": self.cuts, "lowest": int(self.lowest)}

    def cut(self) -> None:
        """Multiplicative decrease, at most once per round trip (like TCP, once per window)."""
        now = self._clock()
        window = max(MIN_COOLDOWN, min(self._best.values(), default=0.0))
        if now - self._last_cut < window:
            return
        self._last_cut = now
        self.limit = max(float(self.floor), self.limit / 2)
        self._ewma = {}  # judge the new level on fresh samples
        self.cuts += 1
        self.lowest = min(self.lowest, self.limit)


class Breaker:
    """Stops the run when every attempt has failed for `max_failures` tries or `max_seconds`,
    or within `UNREACHABLE_SECONDS` when no attempt of the run has reached the server."""

    def __init__(
        self, max_failures: int, max_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_failures, self.max_seconds = max_failures, max_seconds
        self._clock = clock
        self.failures = 0
        self.reached = False  # some attempt got an answer (or at least a connection)
        self._since: float | None = None

    def succeeded(self) -> None:
        self.failures, self._since, self.reached = 0, None, True

    def failed(self, error: str, where: str, unreachable: str | None = None) -> None:
        """Count a failed try; `unreachable` says why it never reached a server, if it did not."""
        self.failures += 1
        self.reached = self.reached or unreachable is None
        now = self._clock()
        self._since = self._since if self._since is not None else now
        tripped = self.failures >= self.max_failures or now - self._since >= self.max_seconds
        if unreachable is not None and not self.reached:
            if tripped or now - self._since >= UNREACHABLE_SECONDS:
                raise FatalAPIError(
                    f"cannot reach {where}: {error}, {self.failures} tries over "
                    f"{now - self._since:.0f}s; {HINTS[unreachable]}"
                )
            return
        if tripped:
            raise FatalAPIError(
                f"{self.failures} consecutive failures over {now - self._since:.0f}s, the last "
                f"{error} from {where}; the pool is saved, re-run to continue"
            )


class Flow:
    """One limiter and one breaker for all the stages of a run."""

    def __init__(self, concurrency: int, max_failures: int, max_seconds: float) -> None:
        self.limit = AdaptiveLimit(concurrency)
        self.breaker = Breaker(max_failures, max_seconds)
        self.in_flight = 0
        self.requests = 0
        self.cost: float | None = 0.0
        # Parameters a server refused (llm/params.py), with how and why: left out from then on.
        self.dropped: dict[str, str] = {}

    def spent(self, cost: float | None) -> None:
        """Count a paid response toward the budget caps (cost None: prices unknown)."""
        self.requests += 1
        self.cost = None if cost is None or self.cost is None else self.cost + cost
