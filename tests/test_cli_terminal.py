"""How the CLI behaves on a terminal and off one (cron, a log file): progress, signals, help."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import time

import pytest
from typer.testing import CliRunner

from selfinstruct import __version__
from selfinstruct.cli import app
from tests.cli_reference import ENV
from tests.pooldata import FAST, KEY, MakeServer, invoke, lines, write_config, write_seeds

CLI = [sys.executable, "-m", "selfinstruct"]
STEP = re.compile(
    r"run: (\d+)/30 steps \(\d+%\), \+(\d+) generated, \+(\d+) classified, "
    r"\+(\d+) with instances, \d+s"
)


@pytest.fixture(autouse=True)
def setup() -> None:
    write_config(FAST)
    write_seeds()


def test_no_progress_refreshes_off_a_terminal(make_server: MakeServer) -> None:
    result = invoke(make_server(), "run", "--seeds", "seeds.jsonl", "-n", "10")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # no bar, and no plain line before 30 seconds have passed


def test_plain_progress_lines_follow_every_stage(
    make_server: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("selfinstruct.progress.PLAIN_EVERY", 0.0)  # a line at every step
    result = invoke(make_server(), "run", "--seeds", "seeds.jsonl", "-n", "10")
    assert result.exit_code == 0, result.output
    steps = [STEP.fullmatch(line) for line in result.stderr.splitlines()]
    assert all(steps) and len(steps) == 30, result.stderr
    assert [int(m[1]) for m in steps if m] == list(range(1, 31))
    assert result.stderr.splitlines()[-1].startswith(
        "run: 30/30 steps (100%), +10 generated, +10 classified, +10 with instances, "
    )


def test_tqdm_disable_is_honoured(make_server: MakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("selfinstruct.progress.PLAIN_EVERY", 0.0)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    result = invoke(make_server(), "generate", "--seeds", "seeds.jsonl", "-n", "5")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""


def test_a_bar_on_a_terminal_counts_every_stage(make_server: MakeServer) -> None:
    server = make_server()
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))  # 160 columns
    argv = [*CLI, "run", "--seeds", "seeds.jsonl", "-n", "10", "--base-url", server.base_url]
    env = {**os.environ, "OPENAI_API_KEY": KEY}
    child = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    assert child.wait(timeout=60) == 0
    assert b"\r" in seen  # a bar that refreshes in place
    last = seen.split(b"\r")[-2].decode()  # the bar as it was left
    assert re.fullmatch(
        r"run: 100%\|█+\| 30/30 \[.*, \+10 generated, \+10 classified, \+10 with instances\]",
        last,
    ), last


@pytest.mark.parametrize(
    ("command", "sig", "code"),
    [(["run", "-n", "200"], signal.SIGINT, 130), (["generate", "-n", "200"], signal.SIGTERM, 143)],
)
def test_a_signal_prints_what_was_done(
    make_server: MakeServer, command: list[str], sig: int, code: int
) -> None:
    server = make_server(latency=0.2)
    argv = [*CLI, *command, "--seeds", "seeds.jsonl", "--concurrency", "2"]
    argv += ["--base-url", server.base_url]
    env = {**os.environ, "OPENAI_API_KEY": KEY}
    child = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not lines("data/instructions.jsonl") and time.monotonic() < deadline:
        time.sleep(0.01)
    child.send_signal(sig)
    out, err = child.communicate(timeout=30)
    assert child.returncode == code
    have = len(lines("data/instructions.jsonl"))
    stage = command[0]
    assert out.decode().startswith(f"{stage}: interrupted\n")
    label = "instructions" if stage == "run" else "pool"
    assert re.search(rf"\n  {label}\s+{have} / 200 ", out.decode()), out.decode()
    name = signal.Signals(sig).name
    assert err.decode().endswith(
        f"Error: interrupted by {name}; the pool is saved - re-run to continue\n"
    )


def options(help_text: str) -> list[str]:
    """Each option's entry in a --help panel, its wrapped lines joined."""
    entries: list[str] = []
    inside = False
    for line in help_text.splitlines():
        row = line.strip("│ ").rstrip()
        if re.match(r"│ (\* +)?-", line):
            entries.append(row)
            inside = True
        elif line.startswith("│") and inside and row:
            entries[-1] += " " + row
        else:
            inside = False  # a panel's border, or a row that is not an option's
    return [" ".join(entry.split()) for entry in entries]


def test_help_shows_every_default() -> None:
    groups = [(g.name, g.typer_instance) for g in app.registered_groups]
    commands = [[c.name or ""] for c in app.registered_commands] + [
        [name or "", c.name or ""]
        for name, group in groups
        for c in group.registered_commands  # type: ignore[union-attr]
    ]
    missing = []
    for args in [[], *commands]:
        text = CliRunner(env=ENV).invoke(app, [*args, "--help"]).output
        assert not re.search(r"\w \.\s", text), args  # a default swallowed as markup: " ."
        for entry in options(text):
            typers = ("--help", "--install-completion", "--show-completion")  # Typer's own
            if not entry.startswith(typers) and not re.search(r"\[default: |\[required\]", entry):
                missing.append(f"{' '.join(args)}: {entry.split()[0]}")
    assert missing == []
    generate = " ".join(options(CliRunner(env=ENV).invoke(app, ["generate", "--help"]).output))
    assert "Model name. [env var: SELFINSTRUCT_MODEL] [default: (gpt-4o-mini)]" in generate
    assert "Requests in flight. [env var: SELFINSTRUCT_CONCURRENCY] [default: (8)]" in generate


def test_version_as_an_option_and_a_command() -> None:
    for args in (["--version"], ["version"]):
        result = invoke(None, *args)
        assert (result.exit_code, result.stdout) == (0, f"selfinstruct {__version__}\n")


def test_stage_summaries_say_what_this_run_did(make_server: MakeServer) -> None:
    server = make_server()
    assert invoke(server, "generate", "--seeds", "seeds.jsonl", "-n", "4").exit_code == 0
    assert invoke(server, "classify", "--no-progress").exit_code == 0
    assert invoke(server, "generate", "-n", "6", "--no-progress").exit_code == 0
    result = invoke(server, "classify", "--no-progress")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(
        "classify: done\n  this run  2 instructions (4 done by earlier runs)\n"
    )
