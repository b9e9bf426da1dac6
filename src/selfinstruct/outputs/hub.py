"""`selfinstruct push`: the export as Parquet, one file per split, and a dataset card, in one
commit to a Hugging Face dataset repo (the `[hub]` extra, imported on first use).

The token comes from huggingface_hub: HF_TOKEN, or the user's stored login. It goes only into
the client's requests: never into a file, a log or an error (errors are redacted with it).
HF_ENDPOINT is read on each push, so a test (or a private Hub) can point it elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from selfinstruct.clock import now
from selfinstruct.errors import ConfigError, SelfInstructError
from selfinstruct.outputs.card import CardInfo, dataset_card
from selfinstruct.outputs.export import (
    ExportJob,
    ExportReport,
    build_records,
    check_options,
    split_records,
)
from selfinstruct.outputs.parquet import parquet_bytes

INSTALL = "pip install 'selfinstruct[hub]'"
SPLIT_NAME = re.compile(r"^\w+(\.\w+)*$")  # what `datasets` accepts as a split name
DEFAULT_ENDPOINT = "https://huggingface.co"


class HubError(SelfInstructError):
    """The Hub refused a request or could not be reached; nothing was published."""

    exit_code = 1


@dataclass
class PushJob:
    export: ExportJob  # its `out` is unused
    repo_id: str
    private: bool = False
    license: str = "other"
    language: str = "en"


@dataclass
class PushReport:
    repo_id: str = ""
    url: str = ""
    private: bool = False
    export: ExportReport = field(default_factory=ExportReport)
    files: list[tuple[str, int, str]] = field(default_factory=list)  # split, rows, path in repo


def hub() -> Any:
    """The huggingface_hub module, or a usage error that says how to install it."""
    try:
        import huggingface_hub
        import huggingface_hub.errors
        import huggingface_hub.utils  # noqa: F401  (the package loads its submodules lazily)
    except ImportError:
        raise ConfigError(f"pushing to the Hub needs huggingface_hub: {INSTALL}") from None
    return huggingface_hub


def check_repo_id(hf: Any, repo_id: str) -> None:
    try:
        hf.utils.validate_repo_id(repo_id)
    except hf.errors.HFValidationError:
        raise ConfigError(
            f"{repo_id!r} is not a Hub repo id: use NAME or NAMESPACE/NAME with letters, "
            "digits, '-', '_' and '.' (no '--' or '..'), e.g. alice/my-instructions"
        ) from None


def check_splits(splits: list[tuple[str, float]]) -> None:
    for name, _ in splits:
        if not SPLIT_NAME.match(name):
            raise ConfigError(
                f"--split: {name!r} is not a split name the Hub accepts "
                "(letters, digits and '_'; e.g. train, validation, test)"
            )


def token(hf: Any) -> str:
    found: str | None = hf.get_token()
    if not found:
        raise ConfigError(
            "no Hugging Face token: set HF_TOKEN or log in with `hf auth login` "
            "(a token with write access)"
        )
    return found


def push(job: PushJob) -> PushReport:
    """Export the pool's dataset as Parquet splits with a card, and commit them to the Hub."""
    hf = hub()
    splits = check_options(job.export)
    check_splits(splits)
    check_repo_id(hf, job.repo_id)
    secret = token(hf)
    report = PushReport(private=job.private)
    records = build_records(job.export, report.export)
    parts = split_records(records, splits) if splits else [("train", records)]
    endpoint = (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    api = hf.HfApi(endpoint=endpoint, token=secret)
    with refusals(hf, secret, endpoint):
        repo_id = full_id(api, job.repo_id)
        files = {f"data/{name}-00000-of-00001.parquet": part for name, part in parts}
        report.files = [(name, len(p), path) for (name, p), path in zip(parts, files, strict=True)]
        info = card_info(job, repo_id, report.files)
        ops = [
            hf.CommitOperationAdd(path, parquet_bytes(part, job.export.format))
            for path, part in files.items()
        ]
        card = dataset_card(job.export.pool, info)
        ops.append(hf.CommitOperationAdd("README.md", card.encode()))
        api.create_repo(repo_id, repo_type="dataset", private=job.private, exist_ok=True)
        api.create_commit(
            repo_id,
            ops,
            commit_message=f"selfinstruct: {len(records)} examples ({job.export.format})",
            repo_type="dataset",
        )
    report.repo_id, report.url = repo_id, f"{endpoint}/datasets/{repo_id}"
    return report


def full_id(api: Any, repo_id: str) -> str:
    """NAMESPACE/NAME: a bare NAME goes to the token's own namespace."""
    return repo_id if "/" in repo_id else f"{api.whoami()['name']}/{repo_id}"


def card_info(job: PushJob, repo_id: str, files: list[tuple[str, int, str]]) -> CardInfo:
    ex = job.export
    return CardInfo(
        repo_id,
        ex.format,
        license=job.license,
        language=job.language,
        splits=files,
        include_seeds=ex.include_seeds,
        shuffle=ex.shuffle,
        seed=ex.seed,
        pushed=now(),
    )


@contextlib.contextmanager
def refusals(hf: Any, secret: str, endpoint: str) -> Iterator[None]:
    """Turn the Hub's refusals and connection failures into a HubError that never holds the
    token (redacted, should a server or library ever echo it)."""
    try:
        yield
    except hf.errors.HfHubHTTPError as e:
        raise HubError(refused(e).replace(secret, "[token]")) from None
    except Exception as e:
        if not (isinstance(e, OSError) or transport_error(e)):
            raise
        said = f"cannot reach the Hub at {endpoint}: {e}"
        raise HubError(said.replace(secret, "[token]")) from None


def transport_error(error: Exception) -> bool:
    """A network failure of the HTTP stack under huggingface_hub (httpx2, or httpx before)."""
    kinds = [c.__name__ for c in type(error).__mro__]
    return type(error).__module__.split(".")[0] in ("httpx", "httpx2") and "TransportError" in kinds


def refused(error: Any) -> str:
    """The Hub's answer: status, its own message, and what to do about it."""
    status = error.response.status_code
    said = error.server_message or error.response.reason_phrase or ""
    fix = {
        401: "; check HF_TOKEN or `hf auth login`",
        403: "; the token needs write access to that namespace",
        404: "; check the repo id",
    }.get(status, "")
    method = error.response.request.method
    path = error.response.request.url.path
    return f"the Hub refused {method} {path} (HTTP {status}): {said.strip()}{fix}"
