"""One root exception; each subclass says what the user should do and which exit code it gets."""

from __future__ import annotations


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


class BudgetExhausted(SelfInstructError):
    """A --max-requests or --max-cost cap stopped the run; the pool is saved."""

    exit_code = 3


class CorruptPoolError(SelfInstructError):
    """A pool file is damaged beyond a torn last line; it is left untouched for inspection."""

    exit_code = 1


class Interrupted(SelfInstructError):
    """SIGINT or SIGTERM stopped the run after in-flight work was saved (exit 128 + signal)."""

    def __init__(self, signum: int, name: str) -> None:
        super().__init__(f"interrupted by {name}; the pool is saved - re-run to continue")
        self.exit_code = 128 + signum
