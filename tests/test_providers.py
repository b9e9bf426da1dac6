"""A server that refuses a parameter: the LLM layer leaves it out and goes on, and says so.

Through the real openai client over HTTP (in this process and in the HTTP worker) against the
fake server's refusal mode (tests/fakeprovider.py), in the 400 shapes real servers send."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfinstruct.llm.params import refused, without
from tests.fakeprovider import ParamRefusal, payload
from tests.pooldata import FAST, MakeServer, invoke, lines, write_config, write_seeds


@pytest.fixture(autouse=True)
def pool_setup() -> None:
    write_config(FAST + "max_consecutive_failures = 5\n")
    write_seeds()


@pytest.mark.parametrize("style", ["openai", "vllm", "message", "gemini"])
@pytest.mark.parametrize("worker", ["off", "on"])
def test_a_refused_parameter_is_left_out_once_learnt(
    make_server: MakeServer, style: str, worker: str
) -> None:
    write_config(FAST + f'http_worker = "{worker}"\n')
    refusal = ParamRefusal("presence_penalty", style=style)
    server = make_server(refuse_params=refusal)
    args = ("--seeds", "seeds.jsonl", "-n", "8", "--concurrency", "1", "--quiet")
    result = invoke(server, "run", *args)
    assert result.exit_code == 0, result.output
    assert refusal.refused == 1  # one 400, then never again: generate learnt it for the run
    sent = [r.body for r in server.requests if r.status == 200 and r.body]
    assert {"generate", "instances"} <= {stage_of(b) for b in sent}
    assert not any("presence_penalty" in b for b in sent)
    assert len(lines("data/dataset.jsonl")) > 0 and not lines("data/failures.jsonl")
    stages = json.loads(Path("data/run.json").read_text())["stages"]
    noted = {s: e["usage"]["dropped"] for s, e in stages.items() if e.get("usage")}
    assert noted["generate"]["presence_penalty"].startswith("left out (400: ")
    assert "presence_penalty" in noted["instances"]  # left out there too, without a 400
    assert "presence_penalty" not in noted["classify"]  # classify never sends it


def stage_of(body: dict[str, object]) -> str:
    text = json.dumps(body)
    return "generate" if "Continue the list" in text else "instances" if "Task:" in text else "?"


def test_the_summary_says_what_was_refused(make_server: MakeServer) -> None:
    server = make_server(refuse_params=ParamRefusal("presence_penalty", style="vllm"))
    result = invoke(server, "generate", "--seeds", "seeds.jsonl", "-n", "5", "--no-progress")
    assert result.exit_code == 0, result.output
    [row] = [line for line in result.stdout.splitlines() if "refused" in line]
    assert row.split()[:4] == ["refused", "presence_penalty", "left", "out"]
    assert "Extra inputs are not permitted" in row
    assert "refused 'presence_penalty': left out for the rest of this run" in result.stderr


def test_max_tokens_refused_is_sent_as_max_completion_tokens(make_server: MakeServer) -> None:
    refusal = ParamRefusal("max_tokens", style="openai")
    server = make_server(refuse_params=refusal)
    result = invoke(server, "generate", "--seeds", "seeds.jsonl", "-n", "5", "--concurrency", "2")
    assert result.exit_code == 0, result.output
    answered = [r.body for r in server.requests if r.status == 200 and r.body]
    assert answered and all(
        b["max_completion_tokens"] == 1024 and "max_tokens" not in b for b in answered
    )
    assert refusal.refused <= 2  # at most the requests already in flight when it was learnt
    assert "sent as max_completion_tokens" in result.stdout


def test_a_bad_value_is_not_a_refusal_and_fails_as_before(make_server: MakeServer) -> None:
    refusal = ParamRefusal("presence_penalty", style="out_of_range")
    server = make_server(refuse_params=refusal)
    result = invoke(server, "generate", "--seeds", "seeds.jsonl", "-n", "5", "--no-progress")
    assert result.exit_code != 0
    assert all("presence_penalty" in r.body for r in server.requests if r.body)
    assert "refused" not in result.stdout
    assert "decimal above maximum value" in lines("data/failures.jsonl")[0]["error"]


@pytest.mark.parametrize("style", ["openai", "vllm", "message"])
def test_each_shape_names_the_parameter(style: str) -> None:
    sent = {"model": "m", "messages": [], "presence_penalty": 1.5, "n": 1, "stop": ["x"]}
    body = payload("presence_penalty", 1.5, style)
    error = body.get("error", body)  # as the openai client unwraps it
    assert refused(error, f"Error code: 400 - {body}", sent) == "presence_penalty"
    # Named but never sent, or required: nothing to leave out.
    assert refused(error, "", {"model": "m", "messages": []}) is None
    named = payload("model", "m", style)
    assert refused(named.get("error", named), str(named), sent) is None


def test_without_leaves_out_and_renames() -> None:
    body = {"model": "m", "max_tokens": 8, "presence_penalty": 0.0}
    dropped = {"presence_penalty": "left out", "max_tokens": "sent as max_completion_tokens"}
    assert without(body, dropped) == {"model": "m", "max_completion_tokens": 8}
    assert without(body, {}) is body
