"""The Files and Batches endpoints of the fake OpenAI server; batches finish when a test says.

`FakeOpenAI` routes `/v1/files...` and `/v1/batches...` here (after its key check and fault
script). Shapes follow openai 3.54's `FileObject`, `Batch` and cursor pages, so the real client
parses them. Each line of a batch is answered by the same reply function as the online
endpoints, and output lines are written in shuffled order, as the real service may.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import random
import re
import threading
from collections import deque
from collections.abc import Iterable
from typing import Any

Reply = tuple[int, Any]  # status, JSON payload (or bytes)
MAX_REQUESTS = 50_000  # a larger input file fails validation, as on the real service

_ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (method, re.compile(pattern), name)
    for method, pattern, name in (
        ("POST", r"/v1/files", "upload"),
        ("GET", r"/v1/files", "list_files"),
        ("GET", r"/v1/files/(?P<id>[^/]+)/content", "content"),
        ("GET", r"/v1/files/(?P<id>[^/]+)", "file"),
        ("POST", r"/v1/batches", "create"),
        ("GET", r"/v1/batches", "list_batches"),
        ("GET", r"/v1/batches/(?P<id>[^/]+)", "retrieve"),
        ("POST", r"/v1/batches/(?P<id>[^/]+)/cancel", "cancel"),
    )
)
EXPIRED = {
    "code": "batch_expired",
    "message": "This request could not be executed before the completion window expired.",
}


def batch_route(method: str, path: str) -> tuple[str, dict[str, str]] | None:
    """(handler name, path parameters) for a Files or Batches call, else None."""
    for m, pattern, name in _ROUTES:
        if m == method and (match := pattern.fullmatch(path)):
            return name, match.groupdict()
    return None


def _error(status: int, message: str) -> Reply:
    return status, {
        "error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}
    }


def _page(items: list[dict[str, Any]]) -> dict[str, Any]:
    first, last = (items[0]["id"], items[-1]["id"]) if items else (None, None)
    return {"object": "list", "data": items, "first_id": first, "last_id": last, "has_more": False}


class FakeBatches:
    """Uploaded files in memory, batches that wait for `finish`."""

    def __init__(self, fake: Any) -> None:
        self.fake = fake  # the FakeOpenAI, whose reply function answers each line
        self.files: dict[str, dict[str, Any]] = {}
        self.data: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.faults: dict[str, deque[str]] = {}
        self.max_requests = MAX_REQUESTS
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()

    def fail(self, route: str, *faults: str) -> None:
        """The next calls of a route ("upload", "create", ...) fail with a 500: "500" before
        doing anything, "lost" after doing it (the reply is lost on the way back)."""
        self.faults.setdefault(route, deque()).extend(faults)

    def serve(self, method: str, path: str, raw: bytes, headers: dict[str, str]) -> Reply:
        found = batch_route(method, path)
        assert found is not None
        name, params = found
        with self._lock:
            fault = self.faults[name].popleft() if self.faults.get(name) else None
            if fault == "500":
                return _error(500, "The server had an error while processing your request.")
            status, payload = getattr(self, "_" + name)(raw, headers, **params)
            if fault == "lost":
                return _error(500, "The server had an error while processing your request.")
            return status, payload

    # -- files

    def _upload(self, raw: bytes, headers: dict[str, str]) -> Reply:
        head = f"Content-Type: {headers.get('content-type', '')}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
        fields: dict[str, Any] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            fields[str(name)] = (part.get_filename(), part.get_payload(decode=True))
        if "file" not in fields or "purpose" not in fields:
            return _error(400, "'file' and 'purpose' are required (multipart/form-data)")
        filename, data = fields["file"]
        purpose = fields["purpose"][1].decode()
        return 200, self.add_file(str(filename), data, purpose)

    def add_file(self, filename: str, data: bytes, purpose: str) -> dict[str, Any]:
        number = next(self._numbers)
        file: dict[str, Any] = {
            "id": f"file-fake{number:06d}",
            "object": "file",
            "bytes": len(data),
            "created_at": 1700000000 + number,
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }
        self.files[file["id"]], self.data[file["id"]] = file, data
        return file

    def _list_files(self, raw: bytes, headers: dict[str, str]) -> Reply:
        return 200, _page(sorted(self.files.values(), key=lambda f: -f["created_at"]))

    def _file(self, raw: bytes, headers: dict[str, str], id: str) -> Reply:
        return (200, self.files[id]) if id in self.files else _error(404, f"No such File: {id}")

    def _content(self, raw: bytes, headers: dict[str, str], id: str) -> Reply:
        return (200, self.data[id]) if id in self.data else _error(404, f"No such File: {id}")

    # -- batches

    def _create(self, raw: bytes, headers: dict[str, str]) -> Reply:
        body = json.loads(raw or b"{}")
        file_id, endpoint = body.get("input_file_id"), body.get("endpoint")
        if file_id not in self.files:
            return _error(404, f"No such File object: {file_id}")
        if body.get("completion_window") != "24h" or not str(endpoint).startswith("/v1/"):
            return _error(400, "completion_window must be '24h' and endpoint a /v1/ path")
        number = next(self._numbers)
        batch = {
            "id": f"batch_fake{number:06d}",
            "object": "batch",
            "endpoint": endpoint,
            "errors": None,
            "input_file_id": file_id,
            "completion_window": "24h",
            "status": "in_progress",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": 1700000000 + number,
            "metadata": body.get("metadata"),
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
        }
        problem = self._invalid(self.lines(file_id), str(endpoint))
        if problem:
            batch["status"] = "failed"
            batch["errors"] = {
                "object": "list",
                "data": [
                    {"code": "invalid_request", "message": problem, "param": None, "line": None}
                ],
            }
        else:
            batch["request_counts"]["total"] = len(self.lines(file_id))
        self.batches[batch["id"]] = batch
        return 200, batch

    def _invalid(self, lines: list[dict[str, Any]], endpoint: str) -> str | None:
        ids = [line.get("custom_id") for line in lines]
        if not lines or len(lines) > self.max_requests:
            return f"the input file must hold 1 to {self.max_requests} requests"
        if len(set(ids)) != len(ids):
            return "the input file has duplicate custom_id values"
        if any(line.get("url") != endpoint or line.get("method") != "POST" for line in lines):
            return f"every line must be a POST to {endpoint}"
        return None

    def _list_batches(self, raw: bytes, headers: dict[str, str]) -> Reply:
        return 200, _page(sorted(self.batches.values(), key=lambda b: -b["created_at"]))

    def _retrieve(self, raw: bytes, headers: dict[str, str], id: str) -> Reply:
        found = self.batches.get(id)
        return (200, found) if found else _error(404, f"No such Batch: {id}")

    def _cancel(self, raw: bytes, headers: dict[str, str], id: str) -> Reply:
        if id not in self.batches:
            return _error(404, f"No such Batch: {id}")
        self.batches[id]["status"] = "cancelled"
        return 200, self.batches[id]

    # -- finishing, on the test's command

    def lines(self, file_id: str) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.data[file_id].splitlines() if line.strip()]

    def open(self) -> list[dict[str, Any]]:
        return [b for b in self.batches.values() if b["status"] == "in_progress"]

    def finish(
        self,
        order: str = "shuffled",
        fail_ids: Iterable[str] = (),
        expire: int | None = None,
        fail: str | None = None,
        seed: int = 0,
    ) -> list[str]:
        """Finish every open batch; returns their ids.

        `fail_ids`: custom_ids answered with a 500 in the error file; `expire=k`: only the first
        k lines are answered and the batch expires; `fail`: the whole batch fails with this
        message; `order`: "shuffled", "reversed" or "input" for the output lines.
        """
        with self._lock:
            done = []
            for batch in self.open():
                if fail is not None:
                    batch["status"] = "failed"
                    batch["errors"] = {
                        "object": "list",
                        "data": [
                            {"code": "server_error", "message": fail, "param": None, "line": None}
                        ],
                    }
                else:
                    self._run(batch, set(fail_ids), expire, order, random.Random(seed))
                done.append(batch["id"])
            return done

    def _run(
        self,
        batch: dict[str, Any],
        fail_ids: set[str],
        expire: int | None,
        order: str,
        rng: random.Random,
    ) -> None:
        output, errors = [], []
        for i, line in enumerate(self.lines(batch["input_file_id"])):
            number = next(self._numbers)
            row: dict[str, Any] = {
                "id": f"batch_req_{number:06d}",
                "custom_id": line["custom_id"],
                "response": None,
                "error": None,
            }
            if expire is not None and i >= expire:
                errors.append({**row, "error": EXPIRED})
            elif line["custom_id"] in fail_ids:
                _, body = _error(500, "The server had an error while processing your request.")
                response = {"status_code": 500, "request_id": f"req_{number}", "body": body}
                errors.append({**row, "response": response})
            else:
                response = {
                    "status_code": 200,
                    "request_id": f"req_{number}",
                    "body": self.answer(line["url"], line["body"]),
                }
                output.append({**row, "response": response})
        if order == "shuffled":
            rng.shuffle(output)
        elif order == "reversed":
            output.reverse()
        name = batch["id"]
        if output:
            batch["output_file_id"] = self.add_jsonl(f"{name}_output.jsonl", output)
        if errors:
            batch["error_file_id"] = self.add_jsonl(f"{name}_error.jsonl", errors)
        batch["status"] = "expired" if expire is not None else "completed"
        batch["request_counts"] = {
            "total": len(output) + len(errors),
            "completed": len(output),
            "failed": len(errors),
        }

    def answer(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        """The completion the online endpoint would return for this body."""
        if url.endswith("/chat/completions"):
            return dict(self.fake._chat(body, None))
        return dict(self.fake._completions(body, None))

    def add_jsonl(self, filename: str, rows: list[dict[str, Any]]) -> str:
        data = "".join(json.dumps(row) + "\n" for row in rows).encode()
        return str(self.add_file(filename, data, "batch_output")["id"])
