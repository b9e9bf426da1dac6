"""A fake OpenAI-compatible HTTP server for tests: real sockets, scripted faults, a toy model.

Standard library only. The real `openai` client talks to it over HTTP on 127.0.0.1, so the
tests exercise the same transport (httpx2), parsing and error mapping as production.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import random
import re
import select
import socket
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from tests import fakeevolve, fakeprefs
from tests.fakealpaca import alpaca_reply, is_teacher, teacher_reply
from tests.fakebacktranslate import backtranslate_reply, is_backtranslate
from tests.fakebatch import FakeBatches, batch_route
from tests.fakecache import PrefixCache
from tests.fakecorpus import (
    input_output_pairs,
    labelled_pairs,
    make_instruction,
    seed_of,
    sentence,
    target_task,
)
from tests.fakejudge import judge_reply
from tests.fakeprovider import ParamRefusal

Reply = Callable[[dict[str, Any]], str]

ALL_FAULTS: tuple[str, ...] = ("429", "500", "503", "hang", "drop", "malformed", "length")

_ERRORS: dict[str, tuple[int, str, str, str | None]] = {
    # fault -> (status, message, type, code), as the OpenAI API words them.
    "429": (
        429,
        "Rate limit reached for requests. Please try again later.",
        "rate_limit_exceeded",
        "rate_limit_exceeded",
    ),
    "500": (
        500,
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
        None,
    ),
    "503": (
        503,
        "The engine is currently overloaded, please try again later.",
        "server_error",
        None,
    ),
}


class Refuse(Exception):
    """Raised by a `reply` callable: the server answers this request with `status` (a 500:
    retried by the client), as for a fault, without printing a traceback."""

    def __init__(self, status: int = 500) -> None:
        super().__init__(f"refused with {status}")
        self.status = status


@dataclass
class Recorded:
    """One request as the server saw it, and what it did with it."""

    method: str
    path: str
    body: dict[str, Any] | None
    headers: dict[str, str]
    fault: str | None = None
    status: int | None = None  # None while in flight, and for a dropped connection
    in_flight: int = 0  # requests being served when this one arrived, itself included
    arrived: float = field(default_factory=time.monotonic)
    answered: float | None = None  # when the whole reply was written (time.monotonic)
    raw: bytes = field(default=b"", repr=False)  # the body as sent (a multipart upload)
    usage: dict[str, Any] | None = None  # the tokens billed in the reply, if one was sent


# ---------------------------------------------------------------------------
# Token accounting, stop sequences and truncation (shared by all replies)


def estimate_tokens(text: str) -> int:
    """ceil(words * 1.3), in integers so the estimate is exact and deterministic."""
    return (len(text.split()) * 13 + 9) // 10


def cut_words(text: str, words: int) -> str:
    """The text up to the end of its `words`-th word, original spacing kept."""
    if words <= 0:
        return ""
    for i, match in enumerate(re.finditer(r"\S+", text), start=1):
        if i == words:
            return text[: match.end()]
    return text


def truncate_tokens(text: str, limit: int) -> str:
    """The longest word prefix whose token estimate is at most `limit`."""
    words = max(limit, 0) * 10 // 13
    while words > 0 and estimate_tokens(" ".join(["w"] * words)) > limit:
        words -= 1
    return cut_words(text, words)


def apply_stop(text: str, stop: str | Sequence[str] | None) -> tuple[str, bool]:
    """Cut at the first occurrence of any stop sequence; report whether one was found."""
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    cuts = [text.find(s) for s in stops if isinstance(s, str) and s and s in text]
    return (text[: min(cuts)], True) if cuts else (text, False)


def finish(text: str, body: dict[str, Any], fault: str | None) -> tuple[str, str]:
    """Apply stop, max_tokens and the "length" fault; return (text, finish_reason)."""
    text, _ = apply_stop(text, body.get("stop"))
    reason = "stop"
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if isinstance(limit, int) and estimate_tokens(text) > limit:
        text, reason = truncate_tokens(text, limit), "length"
    if fault == "length":
        text, reason = cut_words(text, len(text.split()) // 2), "length"
    return text, reason


def prompt_text(body: dict[str, Any]) -> str:
    """The completions prompt (first one if a list), or the last user message of a chat."""
    if "messages" not in body:
        prompt = body.get("prompt", "")
        return str(prompt[0] if isinstance(prompt, list) and prompt else prompt or "")
    users = [m for m in body.get("messages") or [] if m.get("role") == "user"]
    return _content_text(users[-1].get("content")) if users else ""


def _content_text(content: Any) -> str:
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")


# ---------------------------------------------------------------------------
# Reply helpers usable as `reply=`


def fixed_reply(text: str) -> Reply:
    """Always answer `text`."""
    return lambda body: text


def sequence_reply(*texts: str) -> Reply:
    """Answer the texts in order of arrival, then keep repeating the last one."""
    if not texts:
        raise ValueError("sequence_reply needs at least one text")
    queue, lock = deque(texts), threading.Lock()

    def reply(body: dict[str, Any]) -> str:
        with lock:
            return queue.popleft() if len(queue) > 1 else queue[0]

    return reply


def numbered_reply(items: list[str]) -> Reply:
    """Continue the prompt's numbered list with exactly these items."""
    return lambda body: continue_numbering(body, items)


_NUMBERED = re.compile(r"^\s*(\d+)\s*[.)]", re.MULTILINE)
_OPEN_NUMBER = re.compile(r"(?:^|\n)\s*(\d+)\s*\.\s*$")


def next_number(prompt: str) -> tuple[int, bool]:
    """The number the model should write next, and whether the prompt already wrote it."""
    if m := _OPEN_NUMBER.search(prompt):
        return int(m.group(1)), True
    numbers = [int(n) for n in _NUMBERED.findall(prompt)]
    return (max(numbers) + 1 if numbers else 1), False


def continue_numbering(body: dict[str, Any], items: Sequence[str]) -> str:
    """Number `items` after the prompt's list: a continuation for completions, a list for chat."""
    start, written = next_number(prompt_text(body))
    lines = [f"{start + i}. {item}" for i, item in enumerate(items)]
    if written and "messages" not in body and lines:
        lines[0] = " " + items[0]  # the prompt ends with "9."; the model writes what follows
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# The toy model behind `default_reply`


def default_reply(body: dict[str, Any], salt: int = 0) -> str:
    """A stand-in model for the Self-Instruct prompts; `salt` varies repeated requests."""
    prompt = prompt_text(body)
    chat = "messages" in body
    rng = random.Random(seed_of(body, salt))
    if (judged := judge_reply(prompt, body)) is not None:
        return judged
    if is_backtranslate(prompt):
        return backtranslate_reply(prompt, chat=chat)
    if (candidate := fakeprefs.reply(body)) is not None:
        return candidate
    if is_teacher(body):
        return teacher_reply(body)
    if (tasks := alpaca_reply(prompt, chat, rng)) is not None:
        return tasks
    if (evolved := fakeevolve.reply(prompt, chat=chat)) is not None:
        return evolved
    if "Is it classification?" in prompt:
        return classification_answer(prompt, chat=chat)
    start, written = next_number(prompt)
    if written:
        return _instructions(body, start, rng)
    if "Class label:" in prompt:
        return _continuation(prompt, _labelled_instances(prompt, rng), chat=chat)
    if "Input:" in prompt and "Output:" in prompt:
        return _continuation(prompt, _input_output_instances(rng), chat=chat)
    if _NUMBERED.search(prompt):
        return _instructions(body, start, rng)
    return f"{sentence(rng)} {sentence(rng)}"


def _instructions(body: dict[str, Any], start: int, rng: random.Random) -> str:
    """New numbered instructions from `start` up to 16 (or 7 of them past 16)."""
    last = max(16, start + 6)
    return continue_numbering(body, [make_instruction(rng) for _ in range(start, last + 1)])


def classification_answer(prompt: str, *, chat: bool = False) -> str:
    """The answer " Yes" for about 30% of target tasks, " No" otherwise; fixed per task."""
    tail = prompt.rsplit("Is it classification?", 1)[0]
    answer = "Yes" if seed_of(target_task(tail)) % 10 < 3 else "No"
    return answer if chat else " " + answer


def _labelled_instances(prompt: str, rng: random.Random) -> str:
    pairs = labelled_pairs(prompt, rng)
    return "".join(f"Class label: {label}\nInput: {given}\n\n" for given, label in pairs)


def _input_output_instances(rng: random.Random) -> str:
    return "".join(
        f"Example {i}\nInput: {given}\nOutput: {output}\n\n"
        for i, (given, output) in enumerate(input_output_pairs(rng), 1)
    )


def _continuation(prompt: str, reply: str, *, chat: bool) -> str:
    """If a completions prompt already wrote the reply's first words, write only the rest."""
    tail = prompt.rstrip().rsplit("\n", 1)[-1].strip()
    if not chat and tail and reply.startswith(tail):
        return reply[len(tail) :]
    return reply


# ---------------------------------------------------------------------------
# The server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeOpenAI

    request_queue_size = 1024  # the listen backlog: 128 clients connecting at once must all fit

    def __init__(self, fake: FakeOpenAI) -> None:
        self.fake = fake
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def close_all(self) -> None:
        """Wake every handler blocked on a keep-alive connection so its thread ends."""
        with self.sockets_lock:
            sockets = list(self.open_sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # clients hanging up are not errors
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API
    disable_nagle_algorithm = True  # else small replies wait ~40 ms for a delayed ACK
    wbufsize = 1 << 16  # headers and body leave in one write
    server: _Server

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.fake._serve(self, raw, headers)

    def send(self, record: Recorded, status: int, payload: Any, extra: dict[str, str]) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        record.status = status
        if isinstance(payload, dict) and isinstance(payload.get("usage"), dict):
            record.usage = payload["usage"]
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-request-id", f"req_fake{id(record):x}")
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
            record.answered = time.monotonic()
        except OSError:  # the client gave up (timeout) or the server is stopping
            self.close_connection = True

    def peer_closed(self) -> bool:
        """True once the client hung up (a timed-out client closes its connection)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


def _error(message: str, type_: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


class FakeOpenAI:
    """An OpenAI-compatible server on 127.0.0.1 with scripted or random faults."""

    def __init__(
        self,
        reply: Reply | None = None,
        *,
        api_key: str | None = "sk-test",
        latency: float = 0.0,
        fault_rate: float = 0.0,
        fault_kinds: Sequence[str] = ALL_FAULTS,
        seed: int = 0,
        hang_seconds: float = 3.0,
        retry_after: float = 0.05,
        models: Sequence[str] | None = None,
        rate_limit: float | None = None,
        burst: int = 1,
        slots: int | None = None,
        token_latency: float = 0.0,
        prefix_cache: PrefixCache | None = None,
        refuse_params: ParamRefusal | None = None,
    ) -> None:
        """`rate_limit`: a token bucket of `burst` requests refilled at this many per second;
        a request that finds it empty gets a 429 with Retry-After (like a real rate limit).
        `slots`: at most this many requests are worked on at once (`latency` each) and the rest
        wait their turn, as in vLLM's batch: latency grows with load and no 429 ever comes.
        `token_latency`: seconds more per token of the request's max_tokens, as a real model
        takes longer for longer answers (an 8-token classification against a 1024-token list)."""
        unknown = set(fault_kinds) - set(ALL_FAULTS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; choose from {ALL_FAULTS}")
        self.reply = reply or self._default_reply
        self.api_key = api_key
        self.latency = latency
        self.fault_rate = fault_rate
        self.fault_kinds = tuple(fault_kinds)
        self.hang_seconds = hang_seconds
        self.retry_after = retry_after
        self.models = list(models) if models is not None else None
        self.rate_limit, self.burst = rate_limit, burst
        self._slots = threading.Semaphore(slots) if slots is not None else None
        self.token_latency = token_latency
        self.prefix_cache = prefix_cache  # tests/fakecache.py: report cached prompt tokens
        self.refuse_params = refuse_params  # tests/fakeprovider.py: 400 for these parameters
        self._tokens, self._refilled = float(burst), time.monotonic()
        self.in_flight = 0
        self.requests: list[Recorded] = []
        self.base_url = ""
        self._rng = random.Random(seed)
        self._script: deque[str | None] = deque()
        self._lock = threading.Lock()
        self._counter = itertools.count()
        self._ids = itertools.count(1)
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.files_batches = FakeBatches(self)  # the Files and Batches endpoints

    # -- lifecycle

    def start(self) -> FakeOpenAI:
        self._server = _Server(self)
        port = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop at once: sleeping handlers wake up and drop their connections."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.close_all()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=1)
        self._server = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- control and inspection

    def script(self, *faults: str | None) -> None:
        """Give the next requests these faults, in order (None: a normal reply)."""
        unknown = {f for f in faults if f is not None} - set(ALL_FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; choose from {ALL_FAULTS}")
        with self._lock:
            self._script.extend(faults)

    def completed(self) -> list[Recorded]:
        """Requests answered with a usable 200 reply: no fault, "length", or a "hang" whose
        client waited long enough to read it."""
        usable = (None, "length", "hang")
        return [r for r in self.requests if r.status == 200 and r.fault in usable]

    def finish_batches(self, **how: Any) -> list[str]:
        """Finish the open batches (see FakeBatches.finish: order, fail_ids, expire, fail)."""
        return self.files_batches.finish(**how)

    def bodies(self, path: str | None = None) -> list[dict[str, Any]]:
        """JSON bodies of the requests received (optionally only those to `path`)."""
        return [r.body for r in self.requests if r.body is not None and path in (None, r.path)]

    # -- request handling

    def _default_reply(self, body: dict[str, Any]) -> str:
        return default_reply(body, salt=next(self._counter))

    def _pause(self, seconds: float) -> bool:
        """Sleep unless the server is stopping; True if it is."""
        return self._stopping.wait(seconds) if seconds > 0 else self._stopping.is_set()

    def _serve(self, handler: _Handler, raw: bytes, headers: dict[str, str]) -> None:
        path = handler.path.split("?", 1)[0]
        body = _json_object(raw)
        record = Recorded(handler.command, path, body, headers, raw=raw)
        problem = self._check(handler.command, path, body, headers)
        with self._lock:
            self.requests.append(record)
            self.in_flight += 1
            record.in_flight = self.in_flight
            if problem is None:
                record.fault = "429" if self._rate_limited() else self._draw_fault()
        try:
            if self._work(self.latency + self.token_latency * _max_tokens(body)):
                return handler.drop()
            if problem is not None:
                return handler.send(record, problem[0], problem[1], {})
            self._respond(handler, record)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _work(self, seconds: float) -> bool:
        """Wait for a slot (if slots are limited), then `seconds`; True if the server stops."""
        if self._slots is None:
            return self._pause(seconds)
        while not self._slots.acquire(timeout=0.05):
            if self._stopping.is_set():
                return True
        try:
            return self._pause(seconds)
        finally:
            self._slots.release()

    def _rate_limited(self) -> bool:
        """Take a token from the bucket (caller holds the lock); True when it is empty."""
        if self.rate_limit is None:
            return False
        now = time.monotonic()
        self._tokens = min(
            float(self.burst), self._tokens + (now - self._refilled) * self.rate_limit
        )
        self._refilled = now
        if self._tokens < 1.0:
            return True
        self._tokens -= 1.0
        return False

    def _draw_fault(self) -> str | None:
        if self._script:
            return self._script.popleft()
        if self.fault_rate > 0 and self._rng.random() < self.fault_rate:
            return self._rng.choice(self.fault_kinds)
        return None

    def _check(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        headers: dict[str, str],
    ) -> tuple[int, dict[str, Any]] | None:
        """The error a real server would give before doing any work, if any."""
        if (method, path) not in _ROUTES and batch_route(method, path) is None:
            msg = f"Invalid URL ({method} {path})"
            return 404, _error(msg, "invalid_request_error", None)
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            msg = (
                "Incorrect API key provided. You can find your API key at "
                "https://platform.openai.com/account/api-keys."
            )
            return 401, _error(msg, "invalid_request_error", "invalid_api_key")
        if method == "GET" or batch_route(method, path) is not None:
            return None  # the Files and Batches endpoints check their own input
        if body is None:
            msg = "We could not parse the JSON body of your request."
            return 400, _error(msg, "invalid_request_error", None)
        if self.refuse_params is not None and (refused := self.refuse_params.check(body)):
            return refused
        return _validate(path, body, self.models)

    def _respond(self, handler: _Handler, record: Recorded) -> None:
        fault, body = record.fault, record.body or {}
        if fault == "drop":
            return handler.drop()
        if fault == "hang" and (self._pause(self.hang_seconds) or handler.peer_closed()):
            return handler.drop()  # nobody is left to read the late reply
        if fault in _ERRORS:
            status, message, type_, code = _ERRORS[fault]
            extra = {}
            if fault == "429":
                extra = {
                    "Retry-After": f"{self.retry_after:g}",
                    "retry-after-ms": str(round(self.retry_after * 1000)),
                }
            return handler.send(record, status, _error(message, type_, code), extra)
        if fault == "malformed":
            return handler.send(record, 200, b'{"id": "chatcmpl-broken", "choices": [{"ind', {})
        if (record.method, record.path) not in _ROUTES:
            status, payload = self.files_batches.serve(
                record.method, record.path, record.raw, record.headers
            )
            return handler.send(record, status, payload, {})
        try:
            payload = _ROUTES[(record.method, record.path)](self, body, fault)
        except Refuse as refused:
            error = _error("fake server: refused by the test", "server_error", None)
            return handler.send(record, refused.status, error, {})
        except Exception as exc:  # a broken reply= callable: say so instead of hanging up
            traceback.print_exc()
            message = f"fake server: the reply callable raised {exc!r}"
            return handler.send(record, 500, _error(message, "server_error", None), {})
        handler.send(record, 200, payload, {})

    # -- the three endpoints

    def _chat(self, body: dict[str, Any], fault: str | None) -> dict[str, Any]:
        choices: list[dict[str, Any]] = []
        used = 0
        for i in range(_n(body)):
            text, reason = finish(self.reply(fakeprefs.choice(body, i)), body, fault)
            used += estimate_tokens(text)
            message: dict[str, Any] = {
                "role": "assistant",
                "content": text,
                "refusal": None,
                "annotations": [],
            }
            choices.append(
                {"index": i, "message": message, "logprobs": None, "finish_reason": reason}
            )
        messages = body.get("messages") or []
        prompt = " ".join(_content_text(m.get("content")) for m in messages)
        return self._envelope("chatcmpl", "chat.completion", body, choices, prompt, used)

    def _completions(self, body: dict[str, Any], fault: str | None) -> dict[str, Any]:
        prompt = body.get("prompt", "")
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        choices: list[dict[str, Any]] = []
        used = 0
        for p, _ in itertools.product(prompts, range(_n(body))):
            text, reason = finish(self.reply({**body, "prompt": p}), body, fault)
            used += estimate_tokens(text)
            choice = {
                "text": text,
                "index": len(choices),
                "logprobs": None,
                "finish_reason": reason,
            }
            choices.append(choice)
        kind = "text_completion"
        return self._envelope("cmpl", kind, body, choices, " ".join(prompts), used)

    def _list_models(self, body: dict[str, Any], fault: str | None) -> dict[str, Any]:
        names = self.models if self.models is not None else ["gpt-4o-mini", "davinci-002"]
        data = [
            {"id": n, "object": "model", "created": 1700000000, "owned_by": "fakeserver"}
            for n in names
        ]
        return {"object": "list", "data": data}

    def _envelope(
        self,
        prefix: str,
        kind: str,
        body: dict[str, Any],
        choices: list[dict[str, Any]],
        prompt: str,
        used: int,
    ) -> dict[str, Any]:
        number = next(self._ids)
        prompt_tokens = estimate_tokens(prompt)
        usage: dict[str, Any] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": used,
            "total_tokens": prompt_tokens + used,
        }
        if self.prefix_cache is not None:
            usage["prompt_tokens_details"] = {"cached_tokens": self.prefix_cache.cached(prompt)}
        return {
            "id": f"{prefix}-fake{number:06d}",
            "object": kind,
            "created": 1700000000 + number,
            "model": body["model"],
            "system_fingerprint": "fp_fake",
            "choices": choices,
            "usage": usage,
        }


_Endpoint = Callable[[FakeOpenAI, dict[str, Any], "str | None"], dict[str, Any]]
_ROUTES: dict[tuple[str, str], _Endpoint] = {
    ("POST", "/v1/chat/completions"): FakeOpenAI._chat,
    ("POST", "/v1/completions"): FakeOpenAI._completions,
    ("GET", "/v1/models"): FakeOpenAI._list_models,
}


def _max_tokens(body: dict[str, Any] | None) -> int:
    value = (body or {}).get("max_tokens") or (body or {}).get("max_completion_tokens")
    return value if isinstance(value, int) and value > 0 else 0


def _n(body: dict[str, Any]) -> int:
    n = body.get("n") if body.get("model") != fakeprefs.IGNORES_N else 1
    return n if isinstance(n, int) and n > 0 else 1


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw) if raw else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _validate(
    path: str, body: dict[str, Any], models: Sequence[str] | None
) -> tuple[int, dict[str, Any]] | None:
    def bad(message: str, status: int = 400, code: str | None = None) -> tuple[int, dict[str, Any]]:
        return status, _error(message, "invalid_request_error", code)

    model = body.get("model")
    if not isinstance(model, str) or not model:
        return bad("you must provide a model parameter")
    if models is not None and model not in models:
        msg = f"The model `{model}` does not exist or you do not have access to it."
        return bad(msg, 404, "model_not_found")
    if body.get("stream"):
        return bad("stream=true is not supported by the fake server")
    if path.endswith("chat/completions"):
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            return bad("'messages' must be a non-empty array")
        return None
    prompt = body.get("prompt")
    if not (isinstance(prompt, str) or _all_str(prompt)):
        return bad("'prompt' must be a string or an array of strings")
    return None


def _all_str(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)


def iter_items(text: str) -> Iterable[tuple[int, str]]:
    """(number, text) of each numbered line, for checking replies in tests."""
    for line in text.splitlines():
        if m := re.match(r"\s*(\d+)\s*\.\s*(.*)", line):
            yield int(m.group(1)), m.group(2).strip()
