"""`selfinstruct push` and `export --push-to-hub` against a fake Hub on 127.0.0.1 (never the
real one): the uploaded Parquet read back with pyarrow and `datasets`, the card's YAML and
sections, the token kept out of everything, and the failures (no token, a Hub that refuses,
a bad repo id, a Hub that is down). The CLI runs as a subprocess, as a user runs it, with
HF_ENDPOINT, HF_TOKEN and HF_HOME of the test's own."""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from tests.fakehub import FakeHub, card_metadata
from tests.pooldata import MakeServer, invoke, write_seeds
from tests.test_export import make_pool

TOKEN = "hf_test_write"
CLI = str(Path(sys.executable).with_name("selfinstruct"))


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    with FakeHub({TOKEN: "tester", "hf_read_only": "reader"}) as fake:
        yield fake


@pytest.fixture
def pool(make_server: MakeServer) -> Path:
    """A pool made by a real run against the fake OpenAI server (so run.json is real)."""
    server = make_server()
    write_seeds()
    result = invoke(server, "run", "--seeds", "seeds.jsonl", "-n", "8", "--quiet")
    assert result.exit_code == 0, result.output
    return Path("data")


@pytest.fixture
def small() -> Path:
    """A hand-made pool (no run.json): enough for the failure paths."""
    make_pool()
    return Path("data")


def cli(
    hub: FakeHub | str, *args: str, token: str | None = TOKEN
) -> subprocess.CompletedProcess[str]:
    endpoint = hub if isinstance(hub, str) else hub.endpoint
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(Path("hf-home").resolve()), TQDM_DISABLE="1")
    if token is not None:
        env["HF_TOKEN"] = token
    return subprocess.run(
        [CLI, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def jsonl(path: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def every_file_text(root: Path) -> Iterator[tuple[Path, bytes]]:
    for path in root.rglob("*"):
        if path.is_file():
            yield path, path.read_bytes()


def test_push_uploads_parquet_splits_and_a_card(hub: FakeHub, pool: Path) -> None:
    split = "train=0.75,validation=0.25"
    done = cli(hub, "push", "tester/si-data", "--format", "openai", "--split", split, "--private")
    assert done.returncode == 0, done.stderr
    assert "push: done" in done.stdout and "repo        tester/si-data (private)" in done.stdout
    repo = hub.repos["tester/si-data"]
    assert repo.private and len(repo.commits) == 1
    paths = ["data/train-00000-of-00001.parquet", "data/validation-00000-of-00001.parquet"]
    assert sorted(repo.files) == ["README.md", *paths]

    # The Parquet files hold exactly what `export` writes for the same split.
    result = invoke(None, "export", "--format", "openai", "--split", split, "--out", "x.jsonl")
    assert result.exit_code == 0, result.output
    train = pq.read_table(io.BytesIO(repo.files[paths[0]])).to_pylist()
    validation = pq.read_table(io.BytesIO(repo.files[paths[1]])).to_pylist()
    assert train == jsonl("x.train.jsonl") and validation == jsonl("x.validation.jsonl")
    assert len(validation) > 0 and len(train) == round(0.75 * (len(train) + len(validation)))

    # `datasets` loads the upload by the card's own configs, as the Hub's loader does.
    meta = card_metadata(repo.files["README.md"])
    files = {c["split"]: c["path"] for c in meta["configs"][0]["data_files"]}
    assert files == {"train": paths[0], "validation": paths[1]}
    for path, data in repo.files.items():  # the repo's tree, as a clone of it holds it
        (Path("clone") / path).parent.mkdir(parents=True, exist_ok=True)
        (Path("clone") / path).write_bytes(data)
    import datasets

    local = {name: str(Path("clone") / path) for name, path in files.items()}
    ds = datasets.load_dataset("parquet", data_files=local, cache_dir=str(Path("c").resolve()))
    assert list(ds["validation"]) == validation
    assert ds["train"].features["messages"].feature["role"].dtype == "string"

    assert meta["license"] == "other" and meta["language"] == ["en"]
    assert meta["task_categories"] == ["text-generation"]
    assert meta["size_categories"] == ["n<1K"]
    assert {"self-instruct", "synthetic"} <= set(meta["tags"])
    card = repo.files["README.md"].decode()
    seeds_hash = hashlib.sha256(Path("data/seeds.jsonl").read_bytes()).hexdigest()
    for expected in (
        "## How the data was made",
        f"sha256 `{seeds_hash}`",
        "| generate | gpt-4o-mini | chat |",
        "| instructions | 8 | 8 | 8 |",
        "## Filtered out",
        "## Limitations",
        'load_dataset("tester/si-data")',
    ):
        assert expected in card, expected
    assert "## Review" not in card  # the pool has no review.jsonl

    # The token went only into the requests' Authorization header.
    assert all(TOKEN not in text for text in (done.stdout, done.stderr))
    assert all(TOKEN.encode() not in data for data in repo.files.values())
    assert [p for p, data in every_file_text(Path.cwd()) if TOKEN.encode() in data] == []
    assert {h.get("authorization") for m, p, h in hub.requests if "/datasets/" in p} == {
        f"Bearer {TOKEN}"
    }


def test_a_review_file_adds_its_table(hub: FakeHub, pool: Path) -> None:
    answers = [
        {"id": f"i-{k}", "valid_instruction": True, "correct_output": k % 2 == 0} for k in range(4)
    ]
    (pool / "review.jsonl").write_text("".join(json.dumps(a) + "\n" for a in answers))
    assert cli(hub, "push", "tester/reviewed").returncode == 0
    card = hub.repos["tester/reviewed"].files["README.md"].decode()
    assert "A judge model reviewed 4 sampled instances" in card
    assert "| valid_instruction | 4 / 4 | 100% |" in card
    assert "| correct_output | 2 / 4 | 50% |" in card


def test_a_bare_name_and_export_push_to_hub(hub: FakeHub, pool: Path) -> None:
    done = cli(hub, "export", "--format", "alpaca", "--out", "a.json", "--push-to-hub", "mine")
    assert done.returncode == 0, done.stderr
    assert "export: done" in done.stdout and " tester/mine\n" in done.stdout
    assert Path("a.json").exists()
    got = pq.read_table(
        io.BytesIO(hub.repos["tester/mine"].files["data/train-00000-of-00001.parquet"])
    ).to_pylist()
    assert got == json.loads(Path("a.json").read_text())
    # Again: the repo exists, so the push is a second commit to it.
    assert cli(hub, "export", "--format", "alpaca", "--push-to-hub", "tester/mine").returncode == 0
    assert len(hub.repos["tester/mine"].commits) == 2


def test_the_token_of_a_stored_login(hub: FakeHub, small: Path) -> None:
    Path("hf-home").mkdir()
    Path("hf-home/token").write_text(TOKEN)
    done = cli(hub, "push", "tester/from-login", token=None)
    assert done.returncode == 0, done.stderr
    assert "tester/from-login" in hub.repos


def test_no_token(hub: FakeHub, small: Path) -> None:
    done = cli(hub, "push", "tester/x", token=None)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        "Error: no Hugging Face token: set HF_TOKEN or log in with `hf auth login` "
        "(a token with write access)\n"
    )
    assert hub.repos == {} and [p for _, p, _ in hub.requests if "repos" in p] == []


@pytest.mark.parametrize("repo_id", ["a/b/c", "bad..name", "trailing-", "with space"])
def test_a_bad_repo_id(hub: FakeHub, small: Path, repo_id: str) -> None:
    done = cli(hub, "push", repo_id)
    assert done.returncode == 2
    assert done.stderr == (
        f"Error: {repo_id!r} is not a Hub repo id: use NAME or NAMESPACE/NAME with letters, "
        "digits, '-', '_' and '.' (no '--' or '..'), e.g. alice/my-instructions\n"
    )
    assert hub.requests == []


def test_a_split_name_the_hub_rejects(hub: FakeHub, small: Path) -> None:
    done = cli(hub, "push", "tester/x", "--split", "train=0.5,dev-set=0.5")
    assert done.returncode == 2 and "'dev-set' is not a split name the Hub accepts" in done.stderr


def test_a_hub_that_refuses(hub: FakeHub, small: Path) -> None:
    hub.refuse = (403, "You don't have the rights to create a dataset under this namespace")
    done = cli(hub, "push", "tester/x")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == (
        "Error: the Hub refused POST /api/repos/create (HTTP 403): You don't have the rights "
        "to create a dataset under this namespace; the token needs write access to that "
        "namespace\n"
    )
    assert TOKEN not in done.stderr


def test_another_namespace_and_a_bad_token(hub: FakeHub, small: Path) -> None:
    done = cli(hub, "push", "someone-else/x")
    assert done.returncode == 1
    assert "(HTTP 403): You don't have the rights to create a dataset under someone-else" in (
        done.stderr
    )
    done = cli(hub, "push", "tester/x", token="hf_wrong_token")
    assert done.returncode == 1 and "hf_wrong_token" not in done.stderr
    assert "(HTTP 401): Invalid credentials in Authorization header; check HF_TOKEN" in (
        done.stderr
    )
    assert hub.repos == {}


def test_a_hub_that_is_down(small: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    done = cli(f"http://127.0.0.1:{port}", "push", "tester/x")
    assert done.returncode == 1
    assert done.stderr.startswith(f"Error: cannot reach the Hub at http://127.0.0.1:{port}: ")
    assert TOKEN not in done.stderr


def test_export_to_stdout_and_the_hub_keeps_stdout_clean(hub: FakeHub, small: Path) -> None:
    done = cli(hub, "export", "--format", "sharegpt", "--out", "-", "--push-to-hub", "t2")
    assert done.returncode == 0, done.stderr
    assert [json.loads(line) for line in done.stdout.splitlines()] == pq.read_table(
        io.BytesIO(hub.repos["tester/t2"].files["data/train-00000-of-00001.parquet"])
    ).to_pylist()
    assert "export: done" in done.stderr and "push: done" in done.stderr
