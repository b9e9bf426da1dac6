"""What the model-calling stages share: the LLM session, the manifest entry, the request window."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from selfinstruct import manifest
from selfinstruct.cache import RequestCache
from selfinstruct.config import Settings
from selfinstruct.errors import BudgetExhausted
from selfinstruct.llm import LLM, Usage
from selfinstruct.pool import JsonlAppender, Pool

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class StageReport:
    """Counts for a per-instruction stage (classify, instances)."""

    pending: int = 0
    done_before: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    stopped: str | None = None
    elapsed: float = 0.0
    usage: Usage = field(default_factory=Usage)

    def summary(self) -> tuple[str | None, dict[str, Any]]:
        counters = {"pending": self.pending, "done_before": self.done_before, **self.counts}
        return self.stopped, counters


@dataclass
class StageJob:
    """What a per-instruction stage needs from the command line."""

    pool: Pool
    llm: Settings
    stage: Any
    prompts: Path | None
    progress: bool = True


@contextlib.contextmanager
def llm_session(pool: Pool, settings: Settings, stage: str) -> Iterator[LLM]:
    """A client bound to the pool's cache and failures file, closed afterwards."""
    cache = RequestCache(pool.cache)
    failures = JsonlAppender(pool.failures)
    try:
        yield LLM(settings, cache, failures, stage)
    finally:
        failures.close()
        cache.close()


def run_recorded(
    pool: Pool,
    llm: LLM,
    entry: dict[str, Any],
    main: Coroutine[Any, Any, T],
    summary: Callable[[], tuple[str | None, dict[str, Any]]],
) -> T:
    """Run a stage's coroutine and save its manifest entry whatever the outcome.

    `summary()` gives (why it stopped early or None, counters) at the end.
    """
    entry = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": llm.settings.public(),
        **entry,
    }
    try:
        result = asyncio.run(closing(main, llm))
        stopped = summary()[0]
        entry["outcome"] = f"stopped: {stopped}" if stopped else "done"
        return result
    except BaseException as e:
        entry["outcome"] = f"error: {llm.redact(str(e)) or type(e).__name__}"
        raise
    finally:
        entry["counters"] = summary()[1]
        manifest.record_stage(pool, llm.stage, entry, llm.usage)


async def closing(main: Coroutine[Any, Any, T], llm: LLM) -> T:
    try:
        return await main
    finally:
        await llm.aclose()


async def map_window(
    items: Iterable[T],
    call: Callable[[T], Awaitable[R]],
    handle: Callable[[T, R], None],
    width: int,
    more: Callable[[int], bool] = lambda in_flight: True,
) -> str | None:
    """Call for each item with at most `width` in flight; handle results one at a time.

    `more(in_flight)` can hold back new calls (stage 1 stops near its target). A budget cap
    stops new calls, lets those in flight finish and returns its message.
    """
    pending = iter(items)
    tasks: dict[asyncio.Task[R], T] = {}
    stopped: str | None = None
    try:
        while True:
            while stopped is None and len(tasks) < width and more(len(tasks)):
                item = next(pending, _END)
                if item is _END:
                    break
                tasks[asyncio.ensure_future(call(item))] = item
            if not tasks:
                return stopped
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                item = tasks.pop(task)
                try:
                    result = task.result()
                except BudgetExhausted as e:
                    stopped = str(e)
                    continue
                handle(item, result)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


_END: Any = object()


async def timed(report: StageReport, work: Awaitable[str | None]) -> StageReport:
    started = time.monotonic()
    try:
        report.stopped = await work
    finally:
        report.elapsed = time.monotonic() - started
    return report
