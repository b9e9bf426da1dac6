"""What every command shares: the app, its options, the error boundary, the summary."""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from typer.core import TyperGroup

from selfinstruct.cli.summary import Log, table
from selfinstruct.config import (
    BacktranslateSettings,
    ClassifySettings,
    FileConfig,
    GenerateSettings,
    InstancesSettings,
    Settings,
    read_config_file,
)
from selfinstruct.errors import DISK_FIXES, ConfigError, SelfInstructError, StorageError

ENV_PREFIX = "SELFINSTRUCT"  # every option of every command: SELFINSTRUCT_<OPTION NAME>


class _Group(TyperGroup):
    """The root group: its commands (and a sub-group's) read each option from the
    environment as SELFINSTRUCT_<NAME> (Click's auto_envvar_prefix, flat: not per command).
    The root's own options (--install-completion...) read none."""

    def get_command(self, ctx: _click.Context, cmd_name: str) -> _click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _read_environment(command)
        return command


def _read_environment(command: _click.Command) -> None:
    command.context_settings.setdefault("auto_envvar_prefix", ENV_PREFIX)
    for sub in getattr(command, "commands", {}).values():
        _read_environment(sub)


app = typer.Typer(
    cls=_Group,
    help="Turn a few seed tasks into an instruction-tuning dataset (Self-Instruct).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
if TYPE_CHECKING:
    from typer import _click

    from selfinstruct.pipeline.local import LocalJob
    from selfinstruct.store.pool import Pool

F = TypeVar("F", bound=Callable[..., Any])
PANEL = "Model and API"


def _opt(help: str, default: str, *names: str, **kwargs: Any) -> Any:
    """A model option; `default` is what --help shows (None is resolved later, from the config)."""
    return typer.Option(*names, help=help, rich_help_panel=PANEL, show_default=default, **kwargs)


def _default(name: str) -> str:
    return str(Settings.model_fields[name].default).removesuffix(".0")


OFF = "off"  # shown as the default of a plain flag, which --help otherwise leaves out
NONE = "none"
ConfigOpt = Annotated[
    Path | None, typer.Option(help="Config file.", show_default="./selfinstruct.toml")
]

# The options of every command that calls a model, added by @llm_command.
LLM_OPTIONS: dict[str, Any] = {
    "model": Annotated[str | None, _opt("Model name.", _default("model"))],
    "base_url": Annotated[
        str | None,
        _opt(
            "OpenAI-compatible server, e.g. http://localhost:8000/v1.",
            "OpenAI's API",
            envvar="OPENAI_BASE_URL",
        ),
    ],
    "api_key": Annotated[
        str | None, _opt("API key.", NONE, envvar="OPENAI_API_KEY", show_envvar=True)
    ],
    "api": Annotated[
        str | None,
        _opt("chat, or completions for base models.", _default("api")),
    ],
    "concurrency": Annotated[int | None, _opt("Requests in flight.", _default("concurrency"))],
    "timeout": Annotated[float | None, _opt("Request timeout in seconds.", _default("timeout"))],
    "max_retries": Annotated[int | None, _opt("Retries per request.", _default("max_retries"))],
    "price_in": Annotated[float | None, _opt("USD per million prompt tokens.", "genai-prices")],
    "price_out": Annotated[
        float | None, _opt("USD per million completion tokens.", "genai-prices")
    ],
    "price_cached": Annotated[
        float | None,
        _opt("USD per million prompt tokens the server had cached.", "genai-prices"),
    ],
    "max_requests": Annotated[int | None, _opt("Stop after this many paid requests.", NONE)],
    "max_cost": Annotated[float | None, _opt("Stop when the cost reaches this many USD.", NONE)],
    "local": Annotated[
        bool | None,
        _opt(
            "Start a llama.cpp server with a small model for this command (no key, no network).",
            OFF,
            "--local",
        ),
    ],
    "gguf": Annotated[Path | None, _opt("--local with this GGUF model file.", "a 270M test model")],
    "config": ConfigOpt,
}
PoolOpt = Annotated[Path, typer.Option("--pool", help="Pool directory.")]
PromptsOpt = Annotated[
    Path | None, typer.Option(help="Directory of prompt templates to use.", show_default="built-in")
]
ProgressOpt = Annotated[
    bool, typer.Option(help="Show a progress bar (plain lines off a terminal).")
]
SeedsOpt = Annotated[
    Path | None,
    typer.Option(
        help="Seed tasks (JSONL); needed on a pool's first run.", show_default="the pool's copy"
    ),
]
TargetOpt = Annotated[
    int, typer.Option("--num-instructions", "-n", min=1, help="Target size of the machine pool.")
]
BatchOpt = Annotated[
    bool,
    typer.Option(
        "--batch", help="Batch API: collect what finished, submit what is next.", show_default=OFF
    ),
]
SeedOpt = Annotated[
    int | None, typer.Option(help="Random seed for prompt sampling.", show_default="random")
]
# export's options, which `push` shares
ShuffleOpt = Annotated[
    bool, typer.Option(help="Shuffle the records (with --seed).", show_default=OFF)
]
ExportSeedOpt = Annotated[int, typer.Option(help="Seed for --shuffle and --varied-templates.")]
SystemOpt = Annotated[
    str | None, typer.Option(help="System message (openai, dpo-chat).", show_default=NONE)
]
VariedTemplatesOpt = Annotated[
    bool,
    typer.Option(help="Vary the prompt wording per record (prompt-completion).", show_default=OFF),
]
IncludeSeedsOpt = Annotated[
    bool, typer.Option(help="Add the seed tasks' instances.", show_default=OFF)
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.", show_default=OFF)]


def open_pool(path: Path, seeds: Path | None = None) -> Pool:
    """The pool at `path`. Only a command given --seeds may start one, and it reads the seed
    file first, so that a mistyped --pool or a rejected seed file leaves nothing behind."""
    from selfinstruct.store.pool import Pool, load_seeds

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
        llm = config.settings(Settings, "llm", flags)
        if not (llm.local or llm.gguf):
            return fn(**kwargs, llm=llm, config=config)
        from selfinstruct.pipeline.local import serve

        given = {name for name, value in flags.items() if value is not None} | set(config.llm)
        with serve(local_job(fn.__name__, llm, config, given, kwargs)) as local:
            return fn(**kwargs, llm=local, config=config)

    wrapper.__signature__ = signature.replace(parameters=own + extra)  # type: ignore[attr-defined]
    return handle_errors(wrapper)  # type: ignore[return-value]


def local_job(
    command: str, llm: Settings, config: FileConfig, given: set[str], kwargs: dict[str, Any]
) -> LocalJob:
    """What `--local` needs from a command's own options; checked before the server starts."""
    from selfinstruct.pipeline.local import LocalJob

    if kwargs.get("batch") or command.startswith("batch_"):
        raise ConfigError("--local answers requests as they come: drop --batch (or --local)")
    pool = open_pool(kwargs["pool"], kwargs.get("seeds"))
    return LocalJob(
        pool=pool,
        gguf=llm.gguf,
        llm=llm,
        given=given,
        prompts=kwargs.get("prompts"),
        seeds=kwargs.get("seeds"),
        **model_stages(config),
        backtranslate=backtranslating(command, config, kwargs),
    )


def backtranslating(
    command: str, config: FileConfig, kwargs: dict[str, Any]
) -> BacktranslateSettings | None:
    """`backtranslate` and `run --backtranslate`: their prompt sizes the local server too."""
    if command != "backtranslate_cmd" and not kwargs.get("backtranslate"):
        return None
    flags = {k: kwargs.get(k) for k in ("field", "min_words", "max_words")}
    settings: BacktranslateSettings = config.settings(BacktranslateSettings, "backtranslate", flags)
    return settings


def model_stages(config: FileConfig) -> dict[str, Any]:
    """The settings of the three model stages, from the config file, as job fields."""
    return {
        "generate": config.settings(GenerateSettings, "generate"),
        "classify": config.settings(ClassifySettings, "classify"),
        "instances": config.settings(InstancesSettings, "instances"),
    }


def finish(
    stage: str,
    rows: list[tuple[str, str]],
    stopped: str | None,
    incomplete: str | None = None,
    interrupted: SelfInstructError | None = None,
) -> None:
    """The summary table on stdout, then the exit for how the stage ended (Log.finish)."""
    Log(None, quiet=False).finish(stage, rows, stopped, incomplete, interrupted)


def finish_output(stage: str, rows: list[tuple[str, str]], out: Path) -> None:
    """The summary of a command that writes `out`: on stderr when `out` is stdout (`-`)."""
    if str(out) == "-":
        typer.echo(f"{stage}: done\n" + table(rows), err=True)
    else:
        finish(stage, rows, None)
