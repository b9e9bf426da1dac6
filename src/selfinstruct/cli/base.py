"""What every command shares: the app, its options, the error boundary, the summary."""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from selfinstruct.config import Settings, read_config_file
from selfinstruct.errors import DISK_FIXES, ConfigError, SelfInstructError, StorageError
from selfinstruct.pool import Pool, load_seeds
from selfinstruct.summary import table

app = typer.Typer(
    help="Turn a few seed tasks into an instruction-tuning dataset (Self-Instruct).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
F = TypeVar("F", bound=Callable[..., Any])
PANEL = "Model and API"


def _opt(help: str, **kwargs: Any) -> Any:
    return typer.Option(help=help, rich_help_panel=PANEL, **kwargs)


ConfigOpt = Annotated[Path | None, typer.Option(help="Config file [default: ./selfinstruct.toml].")]

# The options of every command that calls a model, added by @llm_command.
LLM_OPTIONS: dict[str, Any] = {
    "model": Annotated[
        str | None, _opt("Model name [default: gpt-4o-mini].", envvar="SELFINSTRUCT_MODEL")
    ],
    "base_url": Annotated[
        str | None,
        _opt("OpenAI-compatible server, e.g. http://localhost:8000/v1.", envvar="OPENAI_BASE_URL"),
    ],
    "api_key": Annotated[str | None, _opt("API key.", envvar="OPENAI_API_KEY", show_envvar=True)],
    "api": Annotated[
        str | None,
        _opt("chat, or completions for base models [default: chat].", envvar="SELFINSTRUCT_API"),
    ],
    "concurrency": Annotated[int | None, _opt("Requests in flight [default: 8].")],
    "timeout": Annotated[float | None, _opt("Request timeout in seconds [default: 60].")],
    "max_retries": Annotated[int | None, _opt("Retries per request [default: 6].")],
    "price_in": Annotated[float | None, _opt("USD per million prompt tokens.")],
    "price_out": Annotated[float | None, _opt("USD per million completion tokens.")],
    "max_requests": Annotated[int | None, _opt("Stop after this many paid requests.")],
    "max_cost": Annotated[float | None, _opt("Stop when the cost reaches this many USD.")],
    "config": Annotated[
        Path | None, typer.Option(help="Config file [default: ./selfinstruct.toml].")
    ],
}
PoolOpt = Annotated[
    Path, typer.Option("--pool", help="Pool directory.", envvar="SELFINSTRUCT_POOL")
]
PromptsOpt = Annotated[Path | None, typer.Option(help="Directory of prompt templates to use.")]
ProgressOpt = Annotated[bool, typer.Option(help="Show a progress bar.")]
SeedsOpt = Annotated[
    Path | None, typer.Option(help="Seed tasks (JSONL); needed on a pool's first run.")
]
TargetOpt = Annotated[
    int, typer.Option("--num-instructions", "-n", min=1, help="Target size of the machine pool.")
]
BatchOpt = Annotated[
    bool, typer.Option("--batch", help="Batch API: collect what finished, submit what is next.")
]
SeedOpt = Annotated[int | None, typer.Option(help="Random seed for prompt sampling.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def open_pool(path: Path, seeds: Path | None = None) -> Pool:
    """The pool at `path`. Only a command given --seeds may start one, and it reads the seed
    file first, so that a mistyped --pool or a rejected seed file leaves nothing behind."""
    pool = Pool(path)
    if seeds is not None:
        load_seeds(seeds)
    elif not pool.exists():
        raise ConfigError(f"no pool at {path} (create one with --seeds)")
    return pool


def handle_errors(fn: F) -> F:
    """The one error boundary: SelfInstructError -> `Error: ...` on stderr and its exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            try:
                return fn(*args, **kwargs)
            except OSError as e:  # outside a pool (one words its own: Pool.disk_errors)
                if e.errno not in DISK_FIXES or e.filename is None:
                    raise
                raise StorageError.from_os(e) from e
        except SelfInstructError as e:
            if os.environ.get("SELFINSTRUCT_RAISE_ERRORS"):
                raise
            typer.echo(f"Error: {e}", err=True)
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("Interrupted; the pool is saved - re-run the command to continue.", err=True)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def llm_command(fn: F) -> F:
    """Add the model options to a command; it receives them resolved as `llm` and `config`."""
    signature = inspect.signature(fn, eval_str=True)
    own = [p for p in signature.parameters.values() if p.name not in ("llm", "config")]
    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=kind, default=None)
        for name, kind in LLM_OPTIONS.items()
    ]

    @functools.wraps(fn)
    def wrapper(**kwargs: Any) -> Any:
        flags = {name: kwargs.pop(name) for name in LLM_OPTIONS}
        config = read_config_file(flags.pop("config"))
        return fn(**kwargs, llm=config.settings(Settings, "llm", flags), config=config)

    wrapper.__signature__ = signature.replace(parameters=own + extra)  # type: ignore[attr-defined]
    return handle_errors(wrapper)  # type: ignore[return-value]


def finish(stage: str, rows: list[tuple[str, str]], stopped: str | None) -> None:
    typer.echo(f"{stage}: " + ("stopped early" if stopped else "done"))
    typer.echo(table(rows))
    if stopped:
        typer.echo(f"Stopped: {stopped}; the pool is saved - re-run to continue.", err=True)
        raise typer.Exit(3)
