"""What the model-calling stages share: the LLM session, the manifest entry, the request window."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from selfinstruct.clock import now
from selfinstruct.config import Settings
from selfinstruct.errors import BudgetExhausted, Interrupted
from selfinstruct.llm import transport
from selfinstruct.llm.batchfiles import open_keys
from selfinstruct.llm.client import LLM, Request
from selfinstruct.models import Usage
from selfinstruct.progress import progress
from selfinstruct.store import manifest
from selfinstruct.store.cache import RequestCache
from selfinstruct.store.pool import JsonlAppender, Pool

log = logging.getLogger(__name__)  # notices; the CLI shows them on stderr
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
    interrupted: Interrupted | None = None  # by a signal: the CLI shows what was done, then exits
    warnings: list[str] = field(default_factory=list)  # stages.yields: the yield looks wrong

    def left(self, what: str) -> str | None:
        """ "2 unclassified": items whose requests failed for good, left for the next run."""
        failed = self.counts["failed"]
        return f"{failed} {what}" if failed else None

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


class Stop:
    """SIGINT/SIGTERM while a stage runs: the first stops new work and gives requests in flight
    `GRACE` seconds to finish and be written; the second exits at once (every record on disk
    is already whole, and a torn line is repaired on the next start)."""

    GRACE = 5.0

    def __init__(self) -> None:
        self.signum: int | None = None

    def arm(self, task: asyncio.Task[Any]) -> None:
        self.signum = None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._received, sig, task)

    def disarm(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)

    def _received(self, signum: int, task: asyncio.Task[Any]) -> None:
        if self.signum is not None:
            os._exit(128 + signum)
        self.signum = signum
        log.warning(
            "\n%s: finishing requests in flight (up to %.0fs) - send it again to quit at once",
            signal.Signals(signum).name,
            self.GRACE,
        )
        asyncio.get_running_loop().call_later(self.GRACE, task.cancel)

    def raise_if_stopped(self) -> None:
        if self.signum is not None:
            raise Interrupted(self.signum, signal.Signals(self.signum).name)


STOP = Stop()


@contextlib.contextmanager
def llm_session(pool: Pool, settings: Settings, stage: str) -> Iterator[LLM]:
    """A client bound to the pool's cache and failures file, closed afterwards."""
    cache = RequestCache(pool.cache, writer_thread=transport.offloaded(settings))
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
    more: tuple[LLM, ...] = (),
) -> T:
    """Run a stage's coroutine and save its manifest entry whatever the outcome.

    `summary()` gives (why it stopped early or None, counters) at the end; `more`: other
    clients the coroutine uses (a judge's), closed with `llm`.
    """
    entry = {
        "started": now(),
        "settings": llm.settings.public(),
        **entry,
    }
    try:
        result = run_async(main, llm, *more)
        stopped = summary()[0]
        entry["outcome"] = manifest.outcome(stopped)
        return result
    except BaseException as e:
        entry["outcome"] = f"error: {llm.redact(str(e)) or type(e).__name__}"
        raise
    finally:
        entry["counters"] = summary()[1]
        manifest.record_stage(pool, llm.stage, entry, llm.usage)


def run_async(main: Awaitable[T], *llms: LLM) -> T:
    """asyncio.run with the SIGINT/SIGTERM handling of every stage; closes `llms` after."""
    try:
        result = asyncio.run(closing(main, *llms))
    except asyncio.CancelledError:
        STOP.raise_if_stopped()  # the grace period ran out
        raise
    STOP.raise_if_stopped()
    return result


async def closing(main: Awaitable[T], *llms: LLM) -> T:
    task = asyncio.current_task()
    assert task is not None
    STOP.arm(task)
    try:
        return await main
    finally:
        STOP.disarm()
        for llm in llms:
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
            while (
                stopped is None and STOP.signum is None and len(tasks) < width and more(len(tasks))
            ):
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


def leave_to_batches(
    reserved: frozenset[str], items: list[T], build: Callable[[T], Request], report: StageReport
) -> list[T]:
    """The items whose request is not among `reserved` (batchfiles.open_keys: waiting in an
    open batch, which `batch collect` brings in; sending them online would pay twice);
    report.counts["in_open_batches"] counts the rest."""
    if not reserved:
        return items
    outside = [item for item in items if build(item).key not in reserved]
    if parked := len(items) - len(outside):
        report.counts["in_open_batches"] += parked
    return outside


class Worker(Protocol):
    """A per-instruction stage: build and send one request per item, then record the reply."""

    out: JsonlAppender
    on_done: Callable[[Any], object]

    @property
    def report(self) -> StageReport: ...  # read-only here, so a worker may hold a subclass

    def build(self, item: Any) -> Request: ...

    async def ask(self, item: Any) -> Any: ...

    def record(self, item: Any, result: Any) -> None: ...


def run_worker(
    job: StageJob,
    llm: LLM,
    worker: Worker,
    pending: list[Any],
    entry: dict[str, Any],
    more: tuple[LLM, ...] = (),
) -> StageReport:
    """Run a per-instruction stage over `pending` with a progress bar and a manifest entry."""
    pending = leave_to_batches(open_keys(job.pool), pending, worker.build, worker.report)
    worker.report.pending = len(pending)
    if not pending:
        return worker.report
    bar = progress(llm.stage, len(pending), 0, "instr", job.progress)
    with bar, worker.out:
        worker.on_done = lambda record: bar.update(1)
        window = map_window(pending, worker.ask, worker.record, llm.settings.concurrency)
        try:
            main = timed(worker.report, window)
            run_recorded(job.pool, llm, entry, main, worker.report.summary, more)
        except Interrupted as e:
            worker.report.interrupted = e
    return worker.report
