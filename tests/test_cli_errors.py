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

from tests.pooldata import FAST, KEY, MakeServer, invoke, lines, write_config, write_seeds

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
    """A real full disk: a 512 KB tmpfs (in a mount namespace) fills up during stage 1."""
    server = make_server()
    write_seeds()
    Path("full").mkdir()
    cli = f"{' '.join(CLI)} generate --pool full/data --no-progress"
    cli += f" --base-url {server.base_url}"
    script = (
        "mount -t tmpfs -o size=512k tmpfs full || exit 99\n"
        f"{cli} --seeds seeds.jsonl -n 5000 >out1 2>err1; echo $? >rc1\n"
        "cp -a full/data first\n"
        "mount -o remount,size=8m full\n"
        f"{cli} -n 400 >out2 2>err2; echo $? >rc2\n"
        "cp -a full/data second\n"
    )
    argv = [*namespace("--user", "--map-root-user", "--mount"), "sh", "-c", script]
    subprocess.run(argv, env={**os.environ, "OPENAI_API_KEY": KEY})  # the key: never in argv
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
    assert got < 400
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


NEEDS_A_POOL = [
    ["generate", "-n", "5"],
    ["classify"],
    ["instances"],
    ["filter"],
    ["run", "-n", "5"],
    ["status"],
    ["stats"],
    ["export", "--format", "alpaca", "--out", "out.jsonl"],
    ["report"],
    ["batch", "submit"],
    ["batch", "collect"],
    ["batch", "status"],
    ["batch", "export", "--out", "requests.jsonl"],
    ["batch", "import", "results.jsonl"],
]


@pytest.mark.parametrize("args", NEEDS_A_POOL, ids=" ".join)
def test_a_mistyped_pool_is_refused(args: list[str]) -> None:
    Path("results.jsonl").write_text("")
    result = invoke(None, *args, "--pool", "nopool")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == "Error: no pool at nopool (create one with --seeds)\n"
    assert not Path("nopool").exists()


def test_a_seed_file_with_a_bom_is_read(make_server: MakeServer) -> None:
    server = make_server()
    write_seeds()
    Path("seeds.jsonl").write_bytes(b"\xef\xbb\xbf" + Path("seeds.jsonl").read_bytes())
    result = invoke(server, "generate", "--seeds", "seeds.jsonl", "-n", "3", "--no-progress")
    assert result.exit_code == 0, result.output
    assert len(lines("data/seeds.jsonl")) == 8 and len(lines("data/instructions.jsonl")) == 3


@pytest.mark.parametrize("command", [["generate"], ["run", "-n", "5"], ["batch", "submit"]])
def test_a_rejected_seed_file_leaves_nothing(command: list[str]) -> None:
    Path("seeds.jsonl").write_text(
        '{"instruction": "Say hi.", "output": "hi"}\n{"instruction": x}\n'
    )
    Path("a_directory").mkdir()
    result = invoke(None, *command, "--seeds", "seeds.jsonl")
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: seeds.jsonl line 2: invalid JSON: Expecting value (column 17)\n"
    )
    result = invoke(None, *command, "--seeds", "a_directory")
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: a_directory: is a directory, not a seed file; pass a JSONL file to --seeds\n"
    )
    assert not Path("data").exists()


def test_status_reads_past_a_torn_last_line(make_server: MakeServer) -> None:
    server = make_server()
    write_seeds()
    assert invoke(server, "generate", "--seeds", "seeds.jsonl", "-n", "5").exit_code == 0
    with open("data/instructions.jsonl", "ab") as fp:
        fp.write(b'{"id": "i-12')  # a run killed in the middle of a write
    result = invoke(None, "status")
    assert result.exit_code == 0, result.output
    assert "  generate   5 / - instructions, 0 failed requests" in result.stdout
    assert result.stdout.endswith(
        "\n  torn line  data/instructions.jsonl: 12 bytes, left out; repaired on the next write\n"
    )
    more = invoke(server, "generate", "-n", "6", "--no-progress")
    assert more.exit_code == 0 and len(lines("data/instructions.jsonl")) == 6
    assert "torn line" not in invoke(None, "status").stdout


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            '[generate]\nexamples = "x"\n',
            "selfinstruct.toml line 3: [generate] setting 'examples': Input should be a valid "
            "integer, unable to parse string as an integer",
        ),
        (
            "[generate]\nexamples = 2\nmachine_examples = 3\n",
            "selfinstruct.toml line 4: [generate] setting 'machine_examples': 3 is more than "
            "examples (2): it is how many of the examples come from the machine pool",
        ),
        (
            "concurrency = 0\n",
            "selfinstruct.toml line 2: setting 'concurrency': Input should be greater than or "
            "equal to 1",
        ),
    ],
)
def test_a_bad_setting_names_file_and_line(config: str, message: str) -> None:
    write_config(FAST + config)
    write_seeds()
    result = invoke(None, "generate", "--seeds", "seeds.jsonl", "--dry-run")
    assert (result.exit_code, result.stderr) == (2, f"Error: {message}\n")


def test_a_bad_flag_names_the_flag() -> None:
    result = invoke(None, "instances", "--max-instances", "80")
    assert (result.exit_code, result.stderr) == (
        2,
        "Error: --max-instances: Input should be less than or equal to 50\n",
    )
