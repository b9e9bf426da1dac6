"""How requests reach the server: openai clients in this process, or in a worker process.

At a few hundred requests a second the openai client itself (building each request, httpx,
aiohttp) costs more CPU than everything else the pipeline does, and one event loop cannot
keep up. `WireClients` runs the clients in a child process (`python -m selfinstruct.llm.transport
FD`) on another core; the pipeline sends it request bodies and gets back reply JSON over a
socket pair. Retries, the adaptive limit, the breaker and the cache stay in the parent: the
worker makes single attempts and reports each failure precisely enough to rebuild the same
openai exception here. The key reaches the worker over the socket, never argv or the
environment. The worker ignores SIGINT and SIGTERM (the parent decides when to stop) and
exits when the socket closes, so it never outlives the parent, even after a SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import json
import os
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx2  # openai's HTTP library: its exceptions carry these requests and responses
import openai

from selfinstruct.config import Settings
from selfinstruct.errors import ConfigError, FatalAPIError


class MalformedReply(ValueError):
    """A 200 whose JSON is not a completion (retried like a dropped connection)."""


CONNECTIONS_PER_CLIENT = 16
WORKER_MIN_CONCURRENCY = 64  # http_worker = "auto": below this, one process keeps up
FRAME = struct.Struct("!I")
# Why a request never reached a server, as the CLI words it, and the OS error behind it.
UNREACHABLE: dict[str, type[OSError]] = {
    "connection refused": ConnectionRefusedError,
    "name not resolved": socket.gaierror,
}
STATUS_ERRORS: dict[int, type[openai.APIStatusError]] = {
    400: openai.BadRequestError,
    401: openai.AuthenticationError,
    403: openai.PermissionDeniedError,
    404: openai.NotFoundError,
    409: openai.ConflictError,
    422: openai.UnprocessableEntityError,
    429: openai.RateLimitError,
}


def connect(settings: Settings) -> Clients | WireClients:
    """The clients for a run, in this process or in a worker process (`http_worker`)."""
    return WireClients(settings) if offloaded(settings) else Clients(settings)


def offloaded(settings: Settings) -> bool:
    """Whether this run keeps its event loop free of I/O: HTTP in the worker process and the
    cache's commits on a thread (`http_worker`; "auto" from concurrency 64). Below that the
    loop is mostly idle, and the hand-offs would only cost CPU."""
    if settings.http_worker == "auto":
        return settings.concurrency >= WORKER_MIN_CONCURRENCY
    return settings.http_worker == "on"


class Clients:
    """openai clients in this process.

    aiohttp (the default transport) takes any number of requests in flight on one client. The
    httpx transport scans every connection of a pool for each request, so 128 requests in
    flight go through 8 clients of 16 connections, round robin.
    """

    def __init__(self, settings: Settings) -> None:
        shards = 1
        if settings.transport == "httpx":
            shards = max(1, -(-settings.concurrency // CONNECTIONS_PER_CLIENT))
        self.pool = [make_client(settings) for _ in range(shards)]
        self._turn = itertools.cycle(self.pool)
        self.base_url = str(self.pool[0].base_url).rstrip("/")

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        """The reply's JSON. `post` sends the body as built and returns the JSON as is: the
        typed methods re-walk the request and build models, about 1.3 ms of CPU a request."""
        # cast_to=dict, not dict[str, Any]: the openai client's issubclass check on a generic
        # alias raises TypeError on Python 3.10.
        try:
            return await next(self._turn).post(path, body=body, cast_to=dict)
        except openai.APITimeoutError as e:
            if not failed_to_connect(e):
                raise
            # The aiohttp bridge maps every aiohttp.ClientConnectionError (a refused connection,
            # an unknown host) to httpx's ConnectTimeout, which the client reports as a timeout.
            raise openai.APIConnectionError(message=str(e.__cause__), request=e.request) from e

    async def aclose(self) -> None:
        for client in self.pool:
            await client.close()


def make_client(settings: Settings) -> openai.AsyncOpenAI:
    http = openai.DefaultAioHttpClient() if settings.transport == "aiohttp" else None
    return openai.AsyncOpenAI(**client_options(settings), http_client=http)


def client_options(settings: Settings) -> dict[str, Any]:
    """What every openai client here is built with. max_retries=0: the callers retry, count and
    back off themselves (and batch mode must not repeat a create blindly)."""
    return {
        "api_key": api_key(settings),
        "base_url": settings.base_url,
        "timeout": settings.timeout,
        "max_retries": 0,
    }


def api_key(settings: Settings) -> str:
    """Local servers take any key; OpenAI itself needs one. Unset, the key and the server
    come from OPENAI_API_KEY and OPENAI_BASE_URL, as with the openai client itself."""
    if key := settings.secret() or os.environ.get("OPENAI_API_KEY"):
        return key
    if settings.base_url is None and not os.environ.get("OPENAI_BASE_URL"):
        raise ConfigError(
            "no API key found - set OPENAI_API_KEY or pass --api-key "
            "(for a local server, pass --base-url http://localhost:8000/v1)"
        )
    return "not-needed"


class WireClients:
    """The same `post` as `Clients`, served by a worker process started on first use."""

    def __init__(self, settings: Settings) -> None:
        api_key(settings)  # a missing key is a ConfigError now, not in the worker
        self.settings = settings
        default = os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"  # as openai
        self.base_url = (settings.base_url or default).rstrip("/")
        self._worker: subprocess.Popen[bytes] | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._starting: asyncio.Future[asyncio.StreamWriter] | None = None
        self._reading: asyncio.Task[None] | None = None
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count()
        self._gone: str | None = None

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        if self._starting is None:  # the first request starts the worker; others wait for it
            self._starting = asyncio.ensure_future(self._start())
        writer = await asyncio.shield(self._starting)
        if self._gone is not None:
            raise FatalAPIError(self._gone)
        rid = next(self._ids)
        reply = asyncio.get_running_loop().create_future()
        self._waiting[rid] = reply
        writer.write(frame({"id": rid, "path": path, "body": body}))
        try:
            return unpack(await reply, self.base_url + path)
        finally:
            del self._waiting[rid]

    async def _start(self) -> asyncio.StreamWriter:
        ours, theirs = socket.socketpair()
        self._worker = subprocess.Popen(
            [sys.executable, "-m", "selfinstruct.llm.transport", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        transport, protocol = await loop.connect_accepted_socket(
            lambda: asyncio.StreamReaderProtocol(reader), sock=ours
        )
        self._writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        settings = self.settings.model_dump(mode="json", exclude={"api_key"})
        self._writer.write(frame({**settings, "api_key": api_key(self.settings)}))
        self._reading = asyncio.ensure_future(self._read(reader))
        return self._writer

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while (message := await read_frame(reader)) is not None:
            waiting = self._waiting.get(message["id"])
            if waiting is not None and not waiting.done():
                waiting.set_result(message)
        worker = self._worker
        code = await asyncio.to_thread(worker.wait) if worker is not None else None
        self._gone = (
            f"the HTTP worker process exited (code {code}); the pool is saved, re-run to "
            'continue (http_worker = "off" in selfinstruct.toml sends requests from this process)'
        )
        for waiting in self._waiting.values():
            if not waiting.done():
                waiting.set_exception(FatalAPIError(self._gone))

    async def aclose(self) -> None:
        if self._starting is not None:
            await asyncio.gather(self._starting, return_exceptions=True)
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()
        if self._reading is not None:
            await asyncio.gather(self._reading, return_exceptions=True)
        if self._worker is not None and self._worker.poll() is None:
            try:
                await asyncio.to_thread(self._worker.wait, 5)
            except subprocess.TimeoutExpired:
                self._worker.kill()
                self._worker.wait()


def chain(error: BaseException) -> Iterator[BaseException]:
    """The error and what caused it, down to the OS error."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def failed_to_connect(error: BaseException) -> bool:
    """Whether an OS error other than a timeout stopped the request (refused, reset, no host)."""
    return any(isinstance(e, OSError) and not isinstance(e, TimeoutError) for e in chain(error))


def unreachable(error: BaseException) -> str | None:
    """ "connection refused" or "name not resolved" when the request never reached a server."""
    for cause in chain(error):
        for why, kind in UNREACHABLE.items():
            if isinstance(cause, kind):
                return why
    return None


def frame(message: dict[str, Any]) -> bytes:
    data = json.dumps(message).encode()
    return FRAME.pack(len(data)) + data


async def read_frame(reader: asyncio.StreamReader) -> Any:
    """The next message, or None when the other end has closed."""
    try:
        size = FRAME.unpack(await reader.readexactly(FRAME.size))[0]
        return json.loads(await reader.readexactly(size))
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


def unpack(message: dict[str, Any], url: str) -> Any:
    """The reply, or the openai exception the same failure raises in this process."""
    if "ok" in message:
        return message["ok"]
    request = httpx2.Request("POST", url)
    kind, text = message["error"], message.get("message", "")
    if kind == "timeout":
        raise openai.APITimeoutError(request=request)
    if kind == "connection":
        why = message.get("cause")
        cause = UNREACHABLE[why](why) if why in UNREACHABLE else None
        raise openai.APIConnectionError(message=text, request=request) from cause
    if kind != "status":
        raise MalformedReply(text)
    status, raw = int(message["status"]), message["body"]
    response = httpx2.Response(
        status, headers=message["headers"], content=raw.encode(), request=request
    )
    try:
        body: Any = json.loads(raw)
    except ValueError:
        body = raw or None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]  # as the openai client unwraps it
    default = openai.InternalServerError if status >= 500 else openai.APIStatusError
    raise STATUS_ERRORS.get(status, default)(text, response=response, body=body)


# ---------------------------------------------------------------------------
# The worker process


async def serve(sock: socket.socket) -> None:
    """Answer framed requests until the parent closes the socket."""
    reader, writer = await asyncio.open_connection(sock=sock)
    settings = await read_frame(reader)
    if settings is None:
        return
    clients = Clients(Settings.model_validate(settings))
    tasks: set[asyncio.Task[None]] = set()

    async def answer(message: dict[str, Any]) -> None:
        reply = await attempt(clients, message["path"], message["body"])
        writer.write(frame({"id": message["id"], **reply}))

    try:
        while (message := await read_frame(reader)) is not None:
            task = asyncio.ensure_future(answer(message))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await clients.aclose()


async def attempt(clients: Clients, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """One try; a failure as data that `unpack` turns back into the same exception."""
    try:
        return {"ok": await clients.post(path, body)}
    except openai.APIStatusError as e:
        return {
            "error": "status",
            "status": e.status_code,
            "message": e.message,
            "headers": dict(e.response.headers),
            "body": e.response.text,
        }
    except openai.APITimeoutError:
        return {"error": "timeout"}
    except openai.APIConnectionError as e:
        return {"error": "connection", "message": str(e), "cause": unreachable(e)}
    except Exception as e:  # a reply that is not JSON, or not what the client expects
        return {"error": "malformed", "message": f"{type(e).__name__}: {e}"}


def main() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)  # the parent decides when to stop
    gc.freeze()  # the modules imported live as long as the process: no full collection rescans
    asyncio.run(serve(socket.socket(fileno=int(sys.argv[1]))))
    os._exit(0)


if __name__ == "__main__":
    main()
