"""Progress: a tqdm bar on a terminal; elsewhere (cron, `> log 2>&1`) a plain line at most every
`PLAIN_EVERY` seconds, since carriage-return refreshes fill a log file; nothing at all with
--no-progress or TQDM_DISABLE."""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Protocol

from tqdm import tqdm

PLAIN_EVERY = 30.0  # seconds between plain progress lines


class Progress(Protocol):
    """What the stages use of a bar (tqdm's own names)."""

    def update(self, n: int = 1) -> Any: ...

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> Any: ...

    def close(self) -> Any: ...

    def __enter__(self) -> Any: ...

    def __exit__(self, *exc: object) -> Any: ...


def progress(
    label: str, total: int, initial: int = 0, unit: str = "instr", enabled: bool = True
) -> Progress:
    """A bar for a terminal, plain lines for anything else, or nothing."""
    disabled = os.environ.get("TQDM_DISABLE", "").lower() not in ("", "0", "false")
    bar: Progress
    if not enabled or disabled:
        bar = tqdm(total=total, disable=True)
    elif sys.stderr.isatty():
        bar = tqdm(total=total, initial=initial, unit=unit, desc=label)
    else:
        bar = PlainProgress(label, total, initial, unit)
    return bar


class PlainProgress:
    """`label: 40/150 instr (27%), postfix, 31s` on stderr, at most every PLAIN_EVERY seconds."""

    def __init__(self, label: str, total: int, initial: int, unit: str) -> None:
        self.label, self.total, self.n, self.unit = label, total, initial, unit
        self.postfix = ""
        self.started = self.printed = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.printed >= PLAIN_EVERY:
            self.printed = now
            print(self.line(now), file=sys.stderr, flush=True)

    def line(self, now: float) -> str:
        share = f" ({self.n / self.total:.0%})" if self.total else ""
        postfix = f", {self.postfix}" if self.postfix else ""
        return (
            f"{self.label}: {self.n}/{self.total} {self.unit}{share}{postfix}, "
            f"{now - self.started:.0f}s"
        )

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = s

    def close(self) -> None:
        pass

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
