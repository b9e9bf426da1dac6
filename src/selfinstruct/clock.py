"""The one timestamp format of run.json, the pool lock and the logs."""

from __future__ import annotations

import time


def now() -> str:
    """The local time with its UTC offset, e.g. 2026-12-03T08:10:00+0000."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
