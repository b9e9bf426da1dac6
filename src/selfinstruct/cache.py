"""The request cache: every response received is stored before it is used, so none is paid twice."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Completion:
    """What the stages need of a response."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class Pending:
    """A stored response whose records never reached the pool (the run stopped in between)."""

    key: str
    request: dict[str, Any]
    completion: Completion


class RequestCache:
    """SQLite table keyed by a hash of the full request; `applied` marks responses already used."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a commit survives the process being killed; a power cut may lose the
        # last few but never corrupts the table (and a lost reply is only bought again).
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, stage TEXT NOT NULL,"
            " request TEXT NOT NULL, response TEXT NOT NULL, created REAL NOT NULL,"
            " applied INTEGER NOT NULL DEFAULT 0)"
        )

    def get(self, key: str) -> Completion | None:
        row = self.db.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        return Completion(**json.loads(row[0])) if row else None

    def put(self, key: str, stage: str, request: dict[str, Any], completion: Completion) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO responses (key, stage, request, response, created)"
            " VALUES (?, ?, ?, ?, ?)",
            (key, stage, json.dumps(request), json.dumps(vars(completion)), time.time()),
        )

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
        self.db.close()


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
