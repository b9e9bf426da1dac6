"""Batch mode's calls to the Files and Batches API, each recorded in the ledger before and after.

A file recorded as "uploading" is uploaded again only if the server holds no file of its name;
one recorded as "creating" gets a batch only if the server has none for its input file. So a
crash or an error between two calls neither loses nor duplicates a batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from selfinstruct.config import Settings
from selfinstruct.errors import BatchAPIError
from selfinstruct.llm.batchfiles import Ledger, Result, read_results
from selfinstruct.llm.client import MAX_RETRY_AFTER, TERMINAL, BatchAPI, BatchInfo
from selfinstruct.models import BatchEvent
from selfinstruct.store.pool import Pool

T = TypeVar("T")


class Remote:
    """The server side of the ledger's batch files; the client is made on first use."""

    def __init__(self, ledger: Ledger, settings: Settings) -> None:
        self.ledger, self.settings = ledger, settings
        self._api: BatchAPI | None = None

    @property
    def api(self) -> BatchAPI:
        if self._api is None:
            self._api = BatchAPI(self.settings)
        return self._api

    def push(self, event: BatchEvent) -> BatchEvent:
        """Upload a file (unless it is) and create its batch; returns the submitted state."""
        if event.state in ("written", "uploading"):
            event = self.patiently(self.upload, event)
        return self.patiently(self.create, event)

    def upload(self, event: BatchEvent) -> BatchEvent:
        file_id = None
        if event.state == "uploading":  # the last try may have arrived: files are named alike
            ids = [i for i in self.api.files().get(event.file, []) if i not in self.ledger.used]
            file_id = ids[-1] if ids else None
        if file_id is None:
            event = self.ledger.record(event, "uploading")
            file_id = self.api.upload(event.file, self.ledger.upload_bytes(event.file))
        return self.ledger.record(event, "uploaded", file_id=file_id)

    def create(self, event: BatchEvent) -> BatchEvent:
        batch_id = None
        if event.state == "creating":  # the last try may have created it before failing
            mine = [b.id for b in self.api.batches() if b.input_file_id == event.file_id]
            batch_id = next((b for b in mine if b not in self.ledger.collected), None)
        if batch_id is None:
            event = self.ledger.record(event, "creating")
            batch_id = self.api.create(event.file_id or "", event.endpoint, event.file)
        return self.ledger.record(event, "submitted", batch_id=batch_id)

    def fetch(self, event: BatchEvent) -> tuple[BatchInfo, dict[str, Result]]:
        """The batch as the server sees it and, once it has ended, its results by custom_id."""
        info = self.api.retrieve(event.batch_id or "")
        results: dict[str, Result] = {}
        for file_id in (info.output_file_id, info.error_file_id) if info.status in TERMINAL else ():
            if file_id:
                found = read_results(self.api.content(file_id), f"{info.id} file {file_id}")
                results.update((r.custom_id, r) for r in found)
        return info, results

    def patiently(self, step: Callable[[BatchEvent], T], event: BatchEvent) -> T:
        """Retry a step from the file's recorded state, which tells it what to check first."""
        attempts = self.settings.max_retries + 1
        for attempt in range(attempts):
            try:
                return step(self.ledger.latest[event.file])
            except BatchAPIError:
                if attempt + 1 == attempts:
                    raise
                time.sleep(min(self.settings.retry_backoff * 2**attempt, MAX_RETRY_AFTER))
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._api is not None:
            self._api.close()


def batch_status(pool: Pool, settings: Settings) -> list[dict[str, Any]]:
    """Every batch file of the pool, open ones as the server sees them now."""
    ledger = Ledger(pool)
    remote = Remote(ledger, settings)
    rows = []
    try:
        for e in sorted(ledger.latest.values(), key=lambda e: e.time):
            row = {
                "file": e.file,
                "stage": e.stage,
                "state": e.state,
                "status": e.status,
                "completed": e.done,
                "failed": e.failed,
                "total": e.requests,
                "batch": e.batch_id,
            }
            if e.state == "submitted":
                info = remote.api.retrieve(e.batch_id or "")
                row.update(status=info.status, completed=info.completed, failed=info.failed)
            rows.append(row)
    finally:
        remote.close()
    return rows
