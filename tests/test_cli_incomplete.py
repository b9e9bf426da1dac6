"""Requests that fail for good leave work undone: the run says so and exits 4 (not "done", 0),
and the next run finishes it."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from selfinstruct.cli import app
from tests.fakeserver import FakeOpenAI, Refuse, default_reply, prompt_text
from tests.pooldata import FAST, MakeServer, lines, write_config, write_seeds
from tests.pooldata import invoke as cli

INCOMPLETE = "Incomplete: {}; the pool is saved - run again to finish.\n"


@pytest.fixture(autouse=True)
def setup() -> None:
    write_config(FAST + "max_retries = 2\n")
    write_seeds()


class OneFailsForGood:
    """While on, the first classify prompt and the first instances prompt seen fail every try."""

    def __init__(self) -> None:
        self.on = True
        self.doomed: dict[str, str] = {}
        self.salt = itertools.count()

    def reply(self, body: dict[str, Any]) -> str:
        prompt = prompt_text(body)
        if self.on and "Continue the list" not in prompt:
            kind = "classify" if "Is it classification?" in prompt else "instances"
            if self.doomed.setdefault(kind, prompt) == prompt:
                raise Refuse(500)  # retried, then given up
        return default_reply(body, salt=next(self.salt))


def server_failing_one_each(make_server: MakeServer) -> tuple[FakeOpenAI, OneFailsForGood]:
    faults = OneFailsForGood()
    return make_server(reply=faults.reply), faults


def status() -> dict[str, Any]:
    return dict(json.loads(CliRunner().invoke(app, ["status", "--json"]).stdout))


def test_run_with_failed_requests_is_incomplete_then_finishes(make_server: MakeServer) -> None:
    server, faults = server_failing_one_each(make_server)
    argv = ("run", "--seeds", "seeds.jsonl", "-n", "12", "--quiet", "--log-file", "cron.log")
    result = cli(server, *argv)  # as cron runs it
    assert result.exit_code == 4
    assert result.stdout == ""
    assert result.stderr == INCOMPLETE.format("1 unclassified, 1 without instances")
    log = Path("cron.log").read_text()
    assert re.search(r"\+\d{4} run: incomplete\n", log)
    assert re.search(r"\+\d{4} Incomplete: 1 unclassified, 1 without instances\n", log)
    now = status()
    assert now["classify"]["pending"] == 1 and now["instances"]["pending"] == 1
    assert now["last_run"]["outcome"] == "incomplete: 1 unclassified, 1 without instances"
    text = CliRunner().invoke(app, ["status"]).stdout
    assert re.search(r"last run .*: incomplete: 1 unclassified, 1 without instances", text)

    faults.on = False
    again = cli(server, "run")
    assert again.exit_code == 0, again.output
    assert again.stdout.startswith("run: done\n") and "Incomplete" not in again.stderr
    assert len(lines("data/classifications.jsonl")) == len(lines("data/instances.jsonl")) == 12
    assert status()["last_run"]["outcome"] == "done"


def test_stage_commands_with_failed_requests_are_incomplete(make_server: MakeServer) -> None:
    server, faults = server_failing_one_each(make_server)
    assert cli(server, "generate", "--seeds", "seeds.jsonl", "-n", "6").exit_code == 0
    classify = cli(server, "classify", "--no-progress")
    assert classify.exit_code == 4 and classify.stdout.startswith("classify: incomplete\n")
    assert classify.stderr == INCOMPLETE.format("1 unclassified")
    instances = cli(server, "instances", "--no-progress")
    assert instances.exit_code == 4 and instances.stdout.startswith("instances: incomplete\n")
    assert instances.stderr == INCOMPLETE.format("1 without instances")

    faults.on = False
    for stage in ("classify", "instances"):  # instances: the late classification's too
        done = cli(server, stage, "--no-progress")
        assert done.exit_code == 0 and done.stdout.startswith(f"{stage}: done\n"), done.output
    assert len(lines("data/instances.jsonl")) == 6
