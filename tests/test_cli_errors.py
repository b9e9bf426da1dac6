"""What a user sees when the disk, the pool path or an input file is wrong: one line, no
traceback, the right exit code, and nothing on disk changed or left behind."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pooldata import FAST, KEY, MakeServer, invoke, lines, write_config, write_seeds

CLI = [sys.executable, "-m", "selfinstruct"]


@pytest.fixture(autouse=True)
def fast_retries() -> None:
    write_config(FAST)


def namespace(*flags: str) -> list[str]:
    """`unshare FLAGS` when this kernel lets us make the namespace, else skip the test."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1)")
    if subprocess.run(["unshare", *flags, "true"], capture_output=True).returncode != 0:
        pytest.skip(f"unshare {' '.join(flags)} is not permitted here")
    return ["unshare", *flags]


def unprivileged() -> list[str]:
    """A prefix that runs a command without root's right to write anywhere: in a user namespace
    with no uid mapped, file permissions hold even for root (tests often run as root)."""
    return namespace("--user") if os.geteuid() == 0 else []


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("what", ["directory", "file"])
def test_a_read_only_pool_is_one_line(make_server: MakeServer, what: str) -> None:
    server = make_server()
    write_seeds()
    assert invoke(server, "generate", "--seeds", "seeds.jsonl", "-n", "5").exit_code == 0
    before = snapshot(Path("data"))
    read_only = list(Path("data").rglob("*")) + [Path("data")] if what == "directory" else []
    for path in read_only or [Path("data/instructions.jsonl")]:
        path.chmod(path.stat().st_mode & 0o555)
    server.requests.clear()
    argv = [*unprivileged(), *CLI, "generate", "-n", "20", "--base-url", server.base_url]
    done = subprocess.run(argv, env={**os.environ, "OPENAI_API_KEY": KEY}, capture_output=True)
    failed = "data/.lock" if what == "directory" else "data/instructions.jsonl"
    assert done.returncode == 1
    assert done.stderr.decode() == (
        f"Error: {failed}: permission denied - make the pool data writable for this user, "
        "or use another --pool\n"
    )
    assert server.requests == []  # refused before anything was paid for
    assert snapshot(Path("data")) == before


def test_a_full_disk_is_one_line_and_the_pool_continues(make_server: MakeServer) -> None:
    """A real full disk: a 200 KB tmpfs (in a mount namespace) fills up during stage 1."""
    server = make_server()
    write_seeds()
    Path("full").mkdir()
    cli = f"OPENAI_API_KEY={KEY} {' '.join(CLI)} generate --pool full/data --no-progress"
    cli += f" --base-url {server.base_url}"
    script = (
        "mount -t tmpfs -o size=200k tmpfs full || exit 99\n"
        f"{cli} --seeds seeds.jsonl -n 5000 >out1 2>err1; echo $? >rc1\n"
        "cp -a full/data first\n"
        "mount -o remount,size=8m full\n"
        f"{cli} -n 400 >out2 2>err2; echo $? >rc2\n"
        "cp -a full/data second\n"
    )
    subprocess.run([*namespace("--user", "--map-root-user", "--mount"), "sh", "-c", script])
    assert Path("rc1").read_text() == "1\n"
    err = Path("err1").read_text()
    found = re.fullmatch(
        r"Error: full/data/(\S+): no space left on device - free some space, then re-run to "
        r"continue; the pool is saved\n",
        err,
    )
    assert found, err
    pool_files = {"run.json", "cache.sqlite", "instructions.jsonl", "rejected_instructions.jsonl"}
    assert found[1] in pool_files
    assert not list(Path("first").glob(".*.tmp"))  # no half-written run.json left behind
    got = len(Path("first/instructions.jsonl").read_bytes().split(b"\n")) - 1
    assert 0 < got < 400
    assert Path("rc2").read_text() == "0\n", Path("err2").read_text()
    assert len(lines("second/instructions.jsonl")) == 400  # every line whole after the repair
    assert json.loads(Path("second/run.json").read_text())["stages"]["generate"]


def test_a_config_file_that_is_a_directory() -> None:
    Path("selfinstruct.toml").unlink()
    Path("selfinstruct.toml").mkdir()
    write_seeds()
    result = invoke(None, "filter")
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: selfinstruct.toml is a directory, not a config file: rename it, or pass --config\n"
    )
    assert not Path("data").exists()
