"""The request cache: every response received is stored before it is used, so none is paid twice.

Each response is stored with a row of the `spend` journal in the same transaction: what it cost
(tokens, cached prompt tokens, USD at the run's prices). The journal is the durable record of
what a pool paid, even for runs killed before they could write run.json (manifest.py folds it
into the totals).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfinstruct.models import replace_lone_surrogates


@dataclass(frozen=True)
class Completion:
    """What the stages need of a response."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0  # of prompt_tokens, those the server read from its prompt cache

    def __post_init__(self) -> None:
        # Half an emoji ("\ud83c" in a reply's JSON) cannot be written as UTF-8: it would stop
        # the run at the first record, and every later run that replays the cached reply.
        object.__setattr__(self, "text", replace_lone_surrogates(self.text))


@dataclass(frozen=True)
class Pending:
    """A stored response whose records never reached the pool (the run stopped in between)."""

    key: str
    request: dict[str, Any]
    completion: Completion


class RequestCache:
    """SQLite table keyed by a hash of the full request; `applied` marks responses already used."""

    def __init__(self, path: Path, writer_thread: bool = False) -> None:
        self.path = path
        self.db = connect(path)
        self._writer: ThreadPoolExecutor | None = None  # aput's thread, with its own connection
        if writer_thread:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="selfinstruct-cache")
        self._writer_db: sqlite3.Connection | None = None

    def get(self, key: str) -> Completion | None:
        row = self.db.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        return Completion(**json.loads(row[0])) if row else None

    def put(
        self,
        key: str,
        stage: str,
        request: dict[str, Any],
        completion: Completion,
        cost: float | None,
        batched: bool = False,
        paid: bool = True,
    ) -> None:
        """Store a paid response and what it cost (None: unknown prices) in one transaction;
        `paid=False`: another choice of a reply already counted (`n`), no spend row."""
        insert(self.db, row(key, stage, request, completion, cost, batched, paid))

    async def aput(
        self,
        key: str,
        stage: str,
        request: dict[str, Any],
        completion: Completion,
        cost: float | None,
        paid: bool = True,
    ) -> None:
        """`put`, committed on the writer thread when there is one: the event loop serves other
        replies meanwhile (in the loop, SQLite's commits take ~0.11 ms a reply, its checkpoints
        a few ms; the hand-off costs ~0.1 ms of CPU, worth it only on a busy loop)."""
        if self._writer is None:
            return self.put(key, stage, request, completion, cost, paid=paid)
        values = row(key, stage, request, completion, cost, paid=paid)
        written = self._writer.submit(self._write, values)
        # Shielded: a caller cancelled now (the grace period after Ctrl-C ran out) still leaves
        # the reply stored, so the next run uses it instead of buying it again.
        await asyncio.shield(asyncio.wrap_future(written))

    def _write(self, values: Row) -> None:
        if self._writer_db is None:  # made and used on the writer thread only
            self._writer_db = connect(self.path)
        insert(self._writer_db, values)

    def _close_writer(self) -> None:
        if self._writer_db is not None:
            self._writer_db.close()

    def mark_applied(self, key: str) -> None:
        self.db.execute("UPDATE responses SET applied = 1 WHERE key = ?", (key,))

    def pending(self, stage: str) -> list[Pending]:
        rows = self.db.execute(
            "SELECT key, request, response FROM responses WHERE stage = ? AND applied = 0"
            " ORDER BY created",
            (stage,),
        ).fetchall()
        return [Pending(k, json.loads(q), Completion(**json.loads(r))) for k, q, r in rows]

    def count(self, stage: str) -> int:
        row = self.db.execute("SELECT COUNT(*) FROM responses WHERE stage = ?", (stage,)).fetchone()
        return int(row[0])

    def close(self) -> None:
        """Close, after every write already handed to the writer thread is committed."""
        if self._writer is not None:
            self._writer.submit(self._close_writer).result()
            self._writer.shutdown()
            self._writer = None
        self.db.close()


def connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    # WAL + NORMAL: a commit survives the process being killed; a power cut may lose the last
    # few but never corrupts the table (and a lost reply is only bought again).
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(
        "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, stage TEXT NOT NULL,"
        " request TEXT NOT NULL, response TEXT NOT NULL, created REAL NOT NULL,"
        " applied INTEGER NOT NULL DEFAULT 0)"
    )
    db.execute(
        "CREATE TABLE IF NOT EXISTS spend (id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " stage TEXT NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,"
        " cost REAL, batched INTEGER NOT NULL, created REAL NOT NULL,"
        " cached_tokens INTEGER NOT NULL DEFAULT 0)"
    )
    columns = {r[1] for r in db.execute("PRAGMA table_info(spend)")}
    if "cached_tokens" not in columns:  # a cache made before cached tokens were counted
        db.execute("ALTER TABLE spend ADD COLUMN cached_tokens INTEGER NOT NULL DEFAULT 0")
    return db


Row = tuple[tuple[Any, ...], tuple[Any, ...]]  # (the response's row, its spend row)


def row(
    key: str,
    stage: str,
    request: dict[str, Any],
    completion: Completion,
    cost: float | None,
    batched: bool = False,
    paid: bool = True,
) -> Row:
    now = time.time()
    response = (key, stage, json.dumps(request), json.dumps(vars(completion)), now)
    tokens = (completion.prompt_tokens, completion.completion_tokens, completion.cached_tokens)
    return response, (stage, *tokens, cost, int(batched), now) if paid else ()


def insert(db: sqlite3.Connection, values: Row) -> None:
    """The response and its spend row commit together: a reply stored is a reply counted."""
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(
            "INSERT OR REPLACE INTO responses (key, stage, request, response, created)"
            " VALUES (?, ?, ?, ?, ?)",
            values[0],
        )
        if values[1]:  # none for a reply's other choices (`n`): it was counted once
            db.execute(
                "INSERT INTO spend (stage, prompt_tokens, completion_tokens, cached_tokens, cost,"
                " batched, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                values[1],
            )
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def spend_since(path: Path, mark: int) -> tuple[dict[str, dict[str, Any]], int]:
    """Per stage, what the responses stored after spend row `mark` cost, and the last row's id.

    Reads without creating anything (`status` on a pool that has no cache yet)."""
    if not path.exists():
        return {}, mark
    db = sqlite3.connect(path)
    try:
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'spend'").fetchone():
            return {}, mark
        columns = {r[1] for r in db.execute("PRAGMA table_info(spend)")}
        cached = "SUM(cached_tokens)" if "cached_tokens" in columns else "0"  # not migrated yet
        rows = db.execute(
            "SELECT stage, COUNT(*), SUM(batched), SUM(prompt_tokens), SUM(completion_tokens),"
            f" {cached}, TOTAL(cost), COUNT(cost), MAX(id) FROM spend WHERE id > ? GROUP BY stage",
            (mark,),
        ).fetchall()
    finally:
        db.close()
    spent = {
        stage: {
            "requests": n,
            "batched": batched,
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "cached_tokens": cached,
            "cost": cost if priced == n else None,
        }
        for stage, n, batched, prompt, completion, cached, cost, priced, _ in rows
    }
    return spent, max((last for *_, last in rows), default=mark)


class Counters:
    """Durable per-stage counters in the cache database (e.g. the next request round)."""

    def __init__(self, cache: RequestCache) -> None:
        self.db = cache.db
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER)"
        )

    def take(self, name: str) -> int:
        """Return the counter's value and increment it, durably, before the caller uses it."""
        self.db.execute("INSERT OR IGNORE INTO counters VALUES (?, 0)", (name,))
        row = self.db.execute(
            "UPDATE counters SET value = value + 1 WHERE name = ? RETURNING value - 1", (name,)
        ).fetchone()
        return int(row[0])
