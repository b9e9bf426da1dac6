"""The model client: with transport.py (which carries the requests), the only module that
imports `openai`.

Bounded concurrency, retries with backoff and Retry-After, a durable request cache, token and
cost accounting, budget caps, and a failures file for requests that never succeeded.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import openai

from selfinstruct.config import Settings
from selfinstruct.errors import BatchAPIError, BudgetExhausted, FatalAPIError
from selfinstruct.llm import params, transport
from selfinstruct.llm.flow import Flow
from selfinstruct.llm.transport import Clients, MalformedReply, WireClients, client_options
from selfinstruct.models import Failure, Usage
from selfinstruct.pricing import Prices, cost, price_for
from selfinstruct.store.cache import Completion, RequestCache
from selfinstruct.store.pool import JsonlAppender

T = TypeVar("T")
log = logging.getLogger("selfinstruct")


RETRYABLE = (
    openai.RateLimitError,
    openai.InternalServerError,
    openai.APITimeoutError,
    openai.APIConnectionError,
    openai.APIResponseValidationError,
    json.JSONDecodeError,
    MalformedReply,
)
FATAL = {401: "the API key", 403: "the API key's permissions", 404: "--model and --base-url"}
MAX_RETRY_AFTER = 120.0
# While no request of the run has reached the server, a refused connection or an unknown host
# is retried at this pace: the breaker decides within seconds (flow.UNREACHABLE_SECONDS).
UNREACHED_DELAY = 1.0
# Later stages first when requests wait for a slot: work in progress drains before new work.
PRIORITY = {"generate": 0, "classify": 1, "instances": 2}
N = "n"  # several samples in one request (LLM.complete_n)
IGNORED_N = "asked one by one (the server gave one choice for n)"


@dataclass(frozen=True)
class Request:
    """One model call: the body sent to the server and its cache key."""

    key: str
    stage: str
    body: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)


class LLM:
    """Sends requests for one stage; every response goes to the cache before it is returned.

    `connect=False` (batch mode) only builds requests: no client, so no key is needed.
    """

    def __init__(
        self,
        settings: Settings,
        cache: RequestCache,
        failures: JsonlAppender,
        stage: str,
        flow: Flow | None = None,
        clients: Clients | WireClients | None = None,
        connect: bool = True,
    ) -> None:
        self.settings = settings
        self.cache = cache
        self.failures = failures
        self.stage = stage
        self.usage = Usage()
        self.prices = prices(settings)
        self._owns_clients = clients is None
        self._clients = clients or (transport.connect(settings) if connect else None)
        self.flow = flow or Flow(
            settings.concurrency, settings.max_consecutive_failures, settings.breaker_seconds
        )

    def request(
        self,
        prompt: str,
        params: dict[str, Any],
        sample: int = 0,
        system: str | None = None,
        **meta: Any,
    ) -> Request:
        """The body for the configured API; its key covers everything that shapes the reply."""
        body: dict[str, Any] = {"model": self.settings.model, **params}
        if self.settings.api == "chat":
            turns = [{"role": "system", "content": system}] if system else []
            body["messages"] = [*turns, {"role": "user", "content": prompt}]
        else:
            body["prompt"] = prompt
        canonical = json.dumps(
            {"api": self.settings.api, "body": body, "sample": sample}, sort_keys=True
        )
        key = hashlib.sha256(canonical.encode()).hexdigest()
        return Request(key, self.stage, body, {"sample": sample, **meta})

    async def complete(self, req: Request) -> Completion | None:
        """The reply from the cache or the server; None if it failed after all retries."""
        cached = self.cache.get(req.key)
        if cached is not None:
            self.usage.cached += 1
            return cached
        return await self._fresh(req)

    async def complete_n(self, reqs: list[Request]) -> list[Completion | None]:
        """Samples of one prompt (requests that differ only in their seed): from the cache,
        then what is missing in one request with `n` (each choice cached under its sample's
        key, so a re-run finds it), and what that did not give one request at a time: a server
        that refuses `n` has it left out from then on (params.py), one that ignores it gives
        one choice and is asked one by one from then on."""
        got = [self.cache.get(r.key) for r in reqs]
        self.usage.cached += sum(g is not None for g in got)
        missing = [k for k, g in enumerate(got) if g is None]
        if len(missing) > 1 and N not in self.flow.dropped:
            first = reqs[missing[0]]
            multi = replace(first, body={**first.body, N: len(missing)})
            self.check_budget()
            self.flow.in_flight += 1
            try:
                choices = await self._with_retries(multi, [reqs[k].key for k in missing])
            finally:
                self.flow.in_flight -= 1
            if choices is None:
                return got  # failed after its retries: the caller asks again next run
            if 1 == len(choices) < len(missing) and N not in self.flow.dropped:
                self.flow.dropped[N] = IGNORED_N
                self.usage.dropped.setdefault(N, IGNORED_N)
            for k, choice in zip(missing, choices, strict=False):
                got[k] = choice
        rest = [k for k, g in enumerate(got) if g is None]
        answers = await asyncio.gather(*(self._fresh(reqs[k]) for k in rest))
        for k, answer in zip(rest, answers, strict=True):
            got[k] = answer
        return got

    async def _fresh(self, req: Request) -> Completion | None:
        self.check_budget()
        self.flow.in_flight += 1
        try:
            choices = await self._with_retries(req)
        finally:
            self.flow.in_flight -= 1
        return choices[0] if choices else None

    def check_budget(self) -> None:
        """The caps count every stage of this invocation (they share one Flow)."""
        s, f = self.settings, self.flow
        if s.max_requests is not None and f.requests + f.in_flight >= s.max_requests:
            raise BudgetExhausted(f"reached --max-requests {s.max_requests}")
        if s.max_cost is not None and f.cost is not None and f.cost >= s.max_cost:
            raise BudgetExhausted(f"reached --max-cost ${s.max_cost:.2f}")

    async def _with_retries(
        self, req: Request, keys: list[str] | None = None
    ) -> list[Completion] | None:
        """The reply's choices (one unless the body asks for `n`), each cached under its key
        of `keys` (default: the request's); the first carries the reply's tokens and cost."""
        keys = keys or [req.key]
        attempts = self.settings.max_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                choices = await self._attempt(req)
            except RETRYABLE as e:
                if attempt < attempts:
                    self._failed_attempt(e)
                    self.usage.retries += 1
                    await asyncio.sleep(self._delay(e, attempt - 1))
                    continue
                self._give_up(req, e, attempt)
                return None
            except openai.APIStatusError as e:
                if e.status_code in FATAL:
                    raise FatalAPIError(self._fatal_message(e)) from None
                self._give_up(req, e, attempt)  # other 4xx: retrying will not help
                return None
            choices = choices[: len(keys)]
            request = {"body": req.body, "meta": req.meta}
            first = choices[0]  # it carries the reply's tokens: one request, paid once
            spent = cost(
                self.prices, first.prompt_tokens, first.completion_tokens, first.cached_tokens
            )
            for key, completion in zip(keys, choices, strict=False):
                paid = completion is first
                await self.cache.aput(key, req.stage, request, completion, spent, paid=paid)
            self.usage.add(first, self.prices)
            self.flow.spent(spent)
            return choices
        raise AssertionError("unreachable")

    async def _attempt(self, req: Request) -> list[Completion]:
        """One try, holding a slot of the adaptive limit only while on the wire."""
        limit = self.flow.limit
        async with limit.slot(PRIORITY.get(self.stage, 0)):
            started = time.monotonic()
            choices = await self._send(req)
        limit.succeeded(time.monotonic() - started, self.stage)
        self.flow.breaker.succeeded()
        return choices

    def _failed_attempt(self, error: BaseException) -> None:
        name = describe(error)
        self.usage.errors[name] = self.usage.errors.get(name, 0) + 1
        if isinstance(error, (openai.RateLimitError, openai.APITimeoutError)):
            self.flow.limit.cut()
        self.flow.breaker.failed(self.redact(name), self.base_url, transport.unreachable(error))

    async def _send(self, req: Request) -> list[Completion]:
        """Post the body without the parameters the server refused; a 400 that refuses one
        more leaves it out of this and every later request of the run (llm/params.py)."""
        path = "/chat/completions" if self.settings.api == "chat" else "/completions"
        while True:
            body = params.without(req.body, self.flow.dropped)
            if body is not req.body:
                for left_out in self.flow.dropped.keys() & req.body.keys():
                    self.usage.dropped.setdefault(left_out, self.flow.dropped[left_out])
            try:
                return read_choices(await self.clients.post(path, body))
            except (openai.BadRequestError, openai.UnprocessableEntityError) as e:
                name = params.refused(e.body, server_message(e), body)
                if name is None:
                    raise
                self._refused(name, e)

    def _refused(self, name: str, error: openai.APIStatusError) -> None:
        if name in self.flow.dropped:
            return  # another request in flight learnt it first
        said = self.redact(server_message(error))
        said = said if len(said) <= 160 else said[:157] + "..."
        self.flow.dropped[name] = f"{params.how(name)} ({error.status_code}: {said})"
        log.warning(
            "%s refused %r: %s for the rest of this run", self.base_url, name, params.how(name)
        )

    def _delay(self, error: BaseException, attempt: int) -> float:
        return delay(error, attempt, self.settings.retry_backoff, self.flow.breaker.reached)

    def _give_up(self, req: Request, error: BaseException, attempts: int) -> None:
        """Record the request in the failures file; the run goes on unless the breaker trips."""
        self.usage.failed += 1
        message = self.redact(f"{describe(error)}: {error}")
        failure = Failure(
            stage=req.stage, request=req.key, error=message, attempts=attempts, time=time.time()
        )
        self.failures.append(failure)
        self._failed_attempt(error)

    def _fatal_message(self, error: openai.APIStatusError) -> str:
        detail = self.redact(server_message(error))
        return (
            f"{error.status_code} from {self.base_url}: {detail}; "
            f"check {FATAL[error.status_code]} (OPENAI_API_KEY / --api-key, --base-url, --model)"
        )

    @property
    def clients(self) -> Clients | WireClients:
        if self._clients is None:
            raise AssertionError("an LLM made with connect=False never sends requests")
        return self._clients

    @property
    def base_url(self) -> str:
        return self.clients.base_url

    def redact(self, text: str) -> str:
        """Never let the key, or a server's echo of part of it, reach a log or a file."""
        return redact(text, self.settings.secret())

    async def aclose(self) -> None:
        if self._owns_clients and self._clients is not None:
            await self._clients.aclose()


def prices(settings: Settings) -> Prices | None:
    """The run's prices: the flags over the price data (pricing.py)."""
    s = settings
    return price_for(s.model, s.price_in, s.price_out, s.price_cached, s.base_url)


def redact(text: str, secret: str) -> str:
    """The text without the key, or a server's echo of part of it."""
    if secret:
        text = text.replace(secret, "[redacted]")
    return re.sub(r"sk-[A-Za-z0-9_\-*]{3,}", "sk-[redacted]", text)


def read_reply(data: dict[str, Any]) -> Completion:
    """The text, finish reason and token counts of a chat or text completion."""
    return read_choices(data)[0]


def read_choices(data: dict[str, Any]) -> list[Completion]:
    """Each choice of a completion in index order (one unless `n` was asked); the first
    carries the reply's token counts, which cover all of them."""
    try:
        usage = data.get("usage") or {}
        details = usage.get("prompt_tokens_details") or {}
        # OpenAI, vLLM, Gemini, Groq...: prompt_tokens_details.cached_tokens; DeepSeek its own.
        cached = details.get("cached_tokens") or usage.get("prompt_cache_hit_tokens") or 0
        tokens = (
            int(usage.get("prompt_tokens") or 0),
            int(usage.get("completion_tokens") or 0),
            int(cached),
        )
        found = []
        listed = data["choices"]
        ordered = sorted(listed, key=lambda c: c.get("index") or 0) if len(listed) > 1 else listed
        for k, choice in enumerate(ordered):
            message = choice.get("message")
            text = (message.get("content") if message is not None else choice.get("text")) or ""
            prompt, completion, hit = tokens if k == 0 else (0, 0, 0)
            found.append(
                Completion(
                    text=str(text),
                    finish_reason=str(choice.get("finish_reason") or "stop"),
                    prompt_tokens=prompt,
                    completion_tokens=completion,
                    cached_tokens=hit,
                )
            )
        if not found:
            raise IndexError("no choices")
        return found
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as e:
        raise MalformedReply(f"not a completion: {type(e).__name__} {e}") from None


def delay(
    error: BaseException,
    attempt: int,
    base: float,
    reached: bool,
    uniform: Callable[[float, float], float] = random.uniform,
) -> float:
    """Exponential backoff with jitter, or longer when the server's Retry-After says so."""
    ceiling = min(base * 2**attempt, MAX_RETRY_AFTER)
    if not reached and transport.unreachable(error):
        ceiling = min(ceiling, UNREACHED_DELAY)
    backoff = uniform(ceiling / 2, ceiling)
    hinted = retry_after(error)
    return backoff if hinted is None else min(max(hinted, backoff), MAX_RETRY_AFTER)


def retry_after(error: BaseException, now: Callable[[], float] = time.time) -> float | None:
    """Seconds the server asks us to wait: retry-after-ms, or Retry-After as seconds or as an
    HTTP date (RFC 9110), as the openai client reads them."""
    response = getattr(error, "response", None)
    if response is None:
        return None
    headers = response.headers
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is not None:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                continue
    return _until(headers.get("retry-after"), now)


def _until(date: str | None, now: Callable[[], float]) -> float | None:
    """Seconds from now to an HTTP date ("Wed, 21 Oct 2026 07:28:00 GMT"); None if not one."""
    parsed = email.utils.parsedate_tz(date) if date else None
    try:
        return None if parsed is None else max(0.0, email.utils.mktime_tz(parsed) - now())
    except (ValueError, OverflowError):  # a year beyond 9999
        return None


def describe(error: BaseException) -> str:
    """ "503 Service Unavailable", "APITimeoutError", "APIConnectionError (connection refused)"."""
    response = getattr(error, "response", None)
    if isinstance(error, openai.APIStatusError) and response is not None:
        return f"{error.status_code} {response.reason_phrase}".strip()
    why = transport.unreachable(error)
    return type(error).__name__ + (f" ({why})" if why else "")


def server_message(error: openai.APIStatusError) -> str:
    body = params.unwrap(error.body) or error.body
    if isinstance(body, dict):
        message = body.get("message") or body.get("error", {})
        if isinstance(message, dict):
            message = message.get("message")
        if message:
            return str(message)
    return str(error.message)


@dataclass(frozen=True)
class BatchInfo:
    """What batch mode needs of a server-side batch."""

    id: str
    status: str
    input_file_id: str
    output_file_id: str | None
    error_file_id: str | None
    completed: int
    failed: int
    total: int
    error: str  # why a batch failed as a whole ("" if it did not)


TERMINAL = ("completed", "failed", "expired", "cancelled")
UPLOAD_TIMEOUT = 600.0  # a 200 MB file takes longer than one completion


class BatchAPI:
    """The Files and Batches endpoints, synchronous: batch mode makes a few calls per run."""

    # No retries here: a create retried blindly after a lost reply makes a duplicate, so the
    # caller looks at what the server holds before it tries again (stages/batch.py).

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = openai.OpenAI(**client_options(settings))
        self.base_url = str(self.client.base_url).rstrip("/")

    def upload(self, name: str, data: bytes) -> str:
        file = (name, data, "application/jsonl")
        timeout = max(self.settings.timeout, UPLOAD_TIMEOUT)
        create = self.client.files.create
        uploaded = self._call(
            "upload " + name, lambda: create(file=file, purpose="batch", timeout=timeout)
        )
        return uploaded.id

    def files(self) -> dict[str, list[str]]:
        """Filename -> ids of the batch input files on the server, oldest first."""
        listed = self._call("list files", lambda: list(self.client.files.list(purpose="batch")))
        found: dict[str, list[str]] = {}
        for f in sorted(listed, key=lambda f: f.created_at):
            found.setdefault(f.filename, []).append(f.id)
        return found

    def create(self, file_id: str, endpoint: str, name: str) -> str:
        create = self.client.batches.create
        batch = self._call(
            "create a batch for " + name,
            lambda: create(
                input_file_id=file_id,
                endpoint=endpoint,  # type: ignore[arg-type]
                completion_window="24h",
                metadata={"selfinstruct": name},
            ),
        )
        return batch.id

    def batches(self) -> list[BatchInfo]:
        return [
            info(b) for b in self._call("list batches", lambda: list(self.client.batches.list()))
        ]

    def retrieve(self, batch_id: str) -> BatchInfo:
        return info(self._call("get " + batch_id, lambda: self.client.batches.retrieve(batch_id)))

    def content(self, file_id: str) -> bytes:
        return self._call("download " + file_id, lambda: self.client.files.content(file_id)).content

    def _call(self, what: str, call: Callable[[], T]) -> T:
        """One call; errors become a message that says what failed and what to do."""
        try:
            return call()
        except openai.APIStatusError as e:
            detail = redact(server_message(e), self.settings.secret())
            if e.status_code in FATAL:
                raise FatalAPIError(
                    f"{e.status_code} from {self.base_url} ({what}): {detail}; check "
                    f"{FATAL[e.status_code]} (OPENAI_API_KEY / --api-key, --base-url, --model)"
                ) from None
            raise BatchAPIError(f"{what}: {describe(e)} from {self.base_url}: {detail}") from None
        except RETRYABLE as e:
            raise BatchAPIError(f"{what}: {describe(e)} from {self.base_url}") from None

    def close(self) -> None:
        self.client.close()


def info(batch: openai.types.Batch) -> BatchInfo:
    """What batch mode needs of the client's Batch."""
    counts = batch.request_counts
    errors = batch.errors.data if batch.errors and batch.errors.data else []
    return BatchInfo(
        id=batch.id,
        status=batch.status,
        input_file_id=batch.input_file_id,
        output_file_id=batch.output_file_id,
        error_file_id=batch.error_file_id,
        completed=counts.completed if counts else 0,
        failed=counts.failed if counts else 0,
        total=counts.total if counts else 0,
        error="; ".join(str(e.message or e.code) for e in errors[:3]),
    )
