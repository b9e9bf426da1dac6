"""Batch files: request lines, splitting at the API's limits, result lines, and the ledger.

The ledger is `POOL/batches.jsonl`, an append-only log of each batch file's state changes;
`POOL/batch_files/<name>` keeps the requests of each file with their meta, so that a file can
be uploaded again byte for byte and its results put in the cache under the online keys.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from selfinstruct.errors import CorruptPoolError, InputError
from selfinstruct.llm.client import Request, read_reply
from selfinstruct.llm.transport import MalformedReply
from selfinstruct.models import BatchEvent, BatchRequest, ResultLine
from selfinstruct.store.cache import Completion
from selfinstruct.store.pool import (
    OPEN,
    JsonlAppender,
    Pool,
    atomic_jsonl,
    open_batches,
    validate,
)
from selfinstruct.store.userfiles import read_jsonl

# The OpenAI Batch API's limits per input file (module constants so tests can lower them).
MAX_REQUESTS = 50_000
MAX_BYTES = 200_000_000
ENDPOINTS = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}


def batch_request(req: Request, api: str) -> BatchRequest:
    return BatchRequest(
        custom_id=req.key, stage=req.stage, url=ENDPOINTS[api], body=req.body, meta=req.meta
    )


def input_line(req: BatchRequest) -> dict[str, object]:
    """The Batch API input line (what `vllm run-batch -i` reads too)."""
    return {"custom_id": req.custom_id, "method": "POST", "url": req.url, "body": req.body}


def upload_line(req: BatchRequest) -> bytes:
    return json.dumps(input_line(req), ensure_ascii=False).encode() + b"\n"


def split(requests: Iterable[BatchRequest]) -> Iterator[list[BatchRequest]]:
    """Chunks of at most MAX_REQUESTS requests and MAX_BYTES bytes of input file."""
    chunk: list[BatchRequest] = []
    size = 0
    for req in requests:
        n = len(upload_line(req))
        if chunk and (len(chunk) >= MAX_REQUESTS or size + n > MAX_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(req)
        size += n
    if chunk:
        yield chunk


def file_name(stage: str, requests: list[BatchRequest]) -> str:
    """Deterministic: the same requests get the same name, here and on the server."""
    digest = hashlib.sha256("\n".join(r.custom_id for r in requests).encode()).hexdigest()
    return f"selfinstruct-{stage}-{digest[:16]}.jsonl"


@dataclass(frozen=True)
class Result:
    custom_id: str
    completion: Completion | None
    error: str  # "" when there is a completion


def read_results(data: bytes, source: str) -> Iterator[Result]:
    """The results of an output, error or imported file; a bad line names file and line."""
    path = Path(source)
    for lineno, obj in read_jsonl(io.BytesIO(data), source):
        line = validate(ResultLine, obj, path, lineno)
        if line.response is None and line.error is None:
            raise InputError(
                f"{source} line {lineno}: neither 'response' nor 'error' - a requests file? "
                "Import the results the engine wrote (vllm run-batch -o FILE)"
            )
        yield result(line)


def result(line: ResultLine) -> Result:
    response = line.response
    if response is not None and response.status_code == 200 and response.body is not None:
        try:
            return Result(line.custom_id, read_reply(dict(response.body)), "")
        except MalformedReply as e:
            return Result(line.custom_id, None, str(e))
    why = message(line.error) or message(response.body if response else None) or "no response"
    status = f"{response.status_code}: " if response is not None else ""
    return Result(line.custom_id, None, status + why)


def message(error: object) -> str:
    """The message of an error object, an error body ({"error": {...}}) or a string."""
    if isinstance(error, dict):
        inner = error.get("error")
        if isinstance(inner, dict):
            return message(inner)
        return str(error.get("message") or error.get("code") or inner or "")
    return str(error) if error else ""


def open_keys(pool: Pool) -> frozenset[str]:
    """Cache keys of the requests in open batches: the online stages leave them to `batch
    collect` instead of paying for them a second time."""
    keys: set[str] = set()
    for event in open_batches(pool):
        path = pool.batch_files / event.file
        if path.exists():  # a missing file is reported by the batch commands themselves
            keys.update(r.custom_id for r in pool.read(path, BatchRequest))
    return frozenset(keys)


class Ledger:
    """batches.jsonl folded to the latest event per file, plus the request files."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.latest: dict[str, BatchEvent] = {}
        self.collected: set[str] = set()  # batch ids already collected: never matched again
        self.used: set[str] = set()  # file ids of those batches
        for event in pool.read(pool.batches, BatchEvent):
            self.latest[event.file] = event
            if event.state == "collected" and event.batch_id:
                self.collected.add(event.batch_id)
                self.used.add(event.file_id or "")
        # fsync every line: each one is written before or after a call that costs money
        self.out = JsonlAppender(pool.batches, interval=0)

    def record(self, event: BatchEvent, state: str, **changes: object) -> BatchEvent:
        """Append the file's new state (the whole record, so the last line says it all)."""
        new = event.model_copy(update={**changes, "state": state, "time": time.time()})
        self.out.append(new)
        self.latest[new.file] = new
        if state == "collected" and new.batch_id:
            self.collected.add(new.batch_id)
            self.used.add(new.file_id or "")
        return new

    def write(
        self, requests: list[BatchRequest], state: str = "written", target: int | None = None
    ) -> BatchEvent:
        """Keep a chunk of one stage's requests in POOL/batch_files, then record it."""
        stage = requests[0].stage
        name = file_name(stage, requests)
        self.pool.batch_files.mkdir(exist_ok=True)
        with atomic_jsonl(self.pool.batch_files / name) as write:
            for req in requests:
                write(req.model_dump(mode="json"))
        event = BatchEvent(
            file=name,
            stage=stage,
            state=state,
            requests=len(requests),
            endpoint=requests[0].url,
            target=target,
        )
        return self.record(event, state)

    def requests(self, name: str) -> list[BatchRequest]:
        path = self.pool.batch_files / name
        if not path.exists():
            raise CorruptPoolError(
                f"{path} is missing ({self.pool.batches} lists it as {self.latest[name].state}); "
                "restore it: its results are matched to their requests through it"
            )
        return list(self.pool.read(path, BatchRequest))

    def upload_bytes(self, name: str) -> bytes:
        return b"".join(upload_line(req) for req in self.requests(name))

    def open(self) -> list[BatchEvent]:
        return [e for e in self.latest.values() if e.state in OPEN]

    def open_ids(self) -> set[str]:
        """custom_ids of the requests in open batches: not to be submitted again."""
        return {r.custom_id for e in self.open() for r in self.requests(e.file)}

    def close(self) -> None:
        self.out.close()
