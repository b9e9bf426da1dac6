"""One root exception; each subclass says what the user should do and which exit code it gets."""

from __future__ import annotations

import errno


class SelfInstructError(Exception):
    """A failure the user can act on; the CLI prints `Error: <message>`."""

    exit_code = 1


class ConfigError(SelfInstructError):
    """Bad option, config file or environment: fix the command line and re-run."""

    exit_code = 2


class InputError(SelfInstructError):
    """Bad input data (names file, line and field): fix the file and re-run."""

    exit_code = 2


class PoolLockedError(SelfInstructError):
    """Another run holds the pool; try again later (EX_TEMPFAIL, so cron can tell)."""

    exit_code = 75


class FatalAPIError(SelfInstructError):
    """The server refused us in a way retrying cannot fix (bad key, unknown model, dead server)."""

    exit_code = 1


class BatchAPIError(SelfInstructError):
    """A Files or Batches API call failed; what is recorded is safe, so re-run to continue."""

    exit_code = 1


class WorkLeft(SelfInstructError):
    """Requests failed for good (their retries spent); all else is saved and the next run asks
    again. Its own code (not 0, nor 3 or 75, already taken) so that cron can tell."""

    exit_code = 4


class BudgetExhausted(SelfInstructError):
    """A --max-requests or --max-cost cap stopped the run; the pool is saved."""

    exit_code = 3


class CorruptPoolError(SelfInstructError):
    """A pool file is damaged beyond a torn last line; it is left untouched for inspection."""

    exit_code = 1


MOVE = ", or use another --pool"
SAVED = " to continue; the pool is saved"


class StorageError(SelfInstructError):
    """The disk refused a read or write (no permission, full, read-only): fix that and re-run.

    What reached the pool before stays as it was: appends are whole lines (a torn one is
    repaired on the next start) and rewrites are atomic."""

    exit_code = 1

    @classmethod
    def from_os(cls, e: OSError, pool: object = None) -> StorageError:
        """Word an OSError: the path, what the disk said, and what to do (about the pool, when
        it happened inside one)."""
        what, fix, in_pool = DISK_FIXES.get(e.errno or 0, (e.strerror or str(e), "", ""))
        where = f"the pool {pool}" if pool is not None else "it"
        fix = fix.format(where=where) + (in_pool if pool is not None else "")
        path = e.filename if e.filename is not None else pool
        return cls(f"{path}: {what}" + (f" - {fix}" if fix else ""))


# errno -> (what happened, what to do, what to add inside a pool)
DISK_FIXES = {
    errno.EACCES: ("permission denied", "make {where} writable for this user", MOVE),
    errno.EPERM: ("operation not permitted", "make {where} writable for this user", MOVE),
    errno.EROFS: ("read-only file system", "remount it read-write", MOVE),
    errno.ENOSPC: ("no space left on device", "free some space, then re-run", SAVED),
    errno.EDQUOT: ("disk quota exceeded", "free some space, then re-run", SAVED),
    errno.EISDIR: ("is a directory", "remove or rename it", ""),
}


class Interrupted(SelfInstructError):
    """SIGINT or SIGTERM stopped the run after in-flight work was saved (exit 128 + signal)."""

    def __init__(self, signum: int, name: str) -> None:
        super().__init__(f"interrupted by {name}; the pool is saved - re-run to continue")
        self.exit_code = 128 + signum
