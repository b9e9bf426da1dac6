"""A fake Hugging Face Hub on 127.0.0.1 for `selfinstruct push`: the endpoints huggingface_hub
calls to create a dataset repo and commit files to it, holding what was uploaded.

Routes: GET /api/whoami-v2, POST /api/repos/create, POST /api/validate-yaml (parses the card's
YAML header as the Hub does), POST /api/datasets/NS/NAME/preupload/REV (every file "regular":
its bytes travel base64 in the commit, as the Hub does for small files), POST
/api/datasets/NS/NAME/commit/REV (NDJSON). Every route but validate-yaml needs
`Authorization: Bearer <a token in tokens>`. `refuse = (status, message)` answers every
repo write with that error, as a Hub that refuses the namespace or is down.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import yaml

REPO = re.compile(r"^/api/datasets/([^/]+/[^/]+)/(preupload|commit)/([^/?]+)")


@dataclass
class Repo:
    private: bool
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[str] = field(default_factory=list)  # commit summaries, oldest first


class FakeHub:
    def __init__(self, tokens: dict[str, str] | None = None) -> None:
        self.tokens = tokens if tokens is not None else {"hf_test_write": "tester"}
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # method, path, headers (lower)
        self.refuse: tuple[int, str] | None = None
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                hub.handle(self, "GET")

            def do_POST(self) -> None:
                hub.handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def handle(self, req: BaseHTTPRequestHandler, method: str) -> None:
        body = req.rfile.read(int(req.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in req.headers.items()}
        self.requests.append((method, req.path, headers))
        status, reply = self.route(req, method, body)
        data = json.dumps(reply).encode()
        req.send_response(status)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        req.wfile.write(data)

    def route(self, req: BaseHTTPRequestHandler, method: str, body: bytes) -> tuple[int, Any]:
        if req.path == "/api/validate-yaml":
            return self.validate_yaml(json.loads(body))
        auth = req.headers.get("Authorization", "")
        user = self.tokens.get(auth.removeprefix("Bearer "))
        if user is None:
            return 401, {"error": "Invalid credentials in Authorization header"}
        if method == "GET" and req.path == "/api/whoami-v2":
            return 200, {"type": "user", "name": user, "auth": {"type": "access_token"}}
        if self.refuse is not None:
            return self.refuse[0], {"error": self.refuse[1]}
        if method == "POST" and req.path == "/api/repos/create":
            return self.create(json.loads(body), user)
        match = REPO.match(req.path)
        if method == "POST" and match:
            repo = self.repos.get(match.group(1))
            if repo is None:
                return 404, {"error": "Repository not found"}
            if match.group(2) == "preupload":
                return 200, self.preupload(json.loads(body))
            return self.commit(repo, match.group(1), body)
        return 404, {"error": f"no route {method} {req.path}"}

    def create(self, payload: dict[str, Any], user: str) -> tuple[int, Any]:
        namespace = payload.get("organization") or user
        if namespace != user:
            return 403, {
                "error": f"You don't have the rights to create a dataset under {namespace}"
            }
        repo_id = f"{namespace}/{payload['name']}"
        if repo_id in self.repos:
            return 409, {"error": "You already created this dataset repo", "url": self.url(repo_id)}
        self.repos[repo_id] = Repo(private=payload.get("visibility") == "private")
        return 200, {"url": self.url(repo_id), "name": repo_id}

    def url(self, repo_id: str) -> str:
        return f"{self.endpoint}/datasets/{repo_id}"

    def preupload(self, payload: dict[str, Any]) -> dict[str, Any]:
        files = [
            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
            for f in payload["files"]
        ]
        return {"files": files, "commitOid": "0" * 40}

    def commit(self, repo: Repo, repo_id: str, body: bytes) -> tuple[int, Any]:
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        header = lines[0]["value"]
        for line in lines[1:]:
            if line["key"] != "file" or line["value"].get("encoding") != "base64":
                return 422, {"error": f"unsupported commit entry {line['key']}"}
            repo.files[line["value"]["path"]] = base64.b64decode(line["value"]["content"])
        repo.commits.append(header["summary"])
        oid = hashlib.sha1(body).hexdigest()
        return 200, {"commitUrl": f"{self.url(repo_id)}/commit/{oid}", "commitOid": oid}

    def validate_yaml(self, payload: dict[str, Any]) -> tuple[int, Any]:
        """The card's metadata must be a YAML mapping between `---` lines, as the Hub checks."""
        match = re.match(r"^---\n(.*?)\n---\n", payload["content"], re.S)
        try:
            meta = yaml.safe_load(match.group(1)) if match else None
        except yaml.YAMLError as e:
            return 400, {"errors": [{"message": f"invalid YAML: {e}"}]}
        if not isinstance(meta, dict):
            return 400, {"errors": [{"message": "metadata must be a YAML mapping"}]}
        return 200, {"warnings": []}


def card_metadata(card: bytes) -> dict[str, Any]:
    """The YAML header of an uploaded README.md."""
    match = re.match(r"^---\n(.*?)\n---\n", card.decode(), re.S)
    assert match, card[:200]
    meta = yaml.safe_load(match.group(1))
    assert isinstance(meta, dict)
    return meta
