"""Soak: the whole pipeline under 20% faults of every kind, killed with SIGKILL at random moments
and restarted until done. Bounded to well under a minute."""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from selfinstruct.config import ClassifySettings, GenerateSettings, InstancesSettings
from selfinstruct.method.similarity import dedup
from tests.fakeserver import ALL_FAULTS, Recorded
from tests.pooldata import FAST, KEY, MakeServer, write_config

TARGET, KILLS, CONCURRENCY, TIMEOUT = 60, 4, 4, 0.4


STAGE_MAX_TOKENS = {  # the defaults, which tell the stages' requests apart
    "generate": GenerateSettings().max_tokens,
    "classify": ClassifySettings().max_tokens,
    "instances": InstancesSettings().max_tokens,
}


def totals() -> dict[str, dict[str, Any]]:
    """Per stage, the usage totals so far (`status`: run.json and the cache's spend journal)."""
    argv = [sys.executable, "-m", "selfinstruct", "status", "--json"]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.stderr.startswith("Error: no pool at"):
        return {}  # every run was killed before it wrote anything
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout)["usage"])


def records(path: Path) -> list[dict[str, Any]]:
    data = path.read_bytes()
    assert data.endswith(b"\n"), f"torn last line in {path}"
    return [json.loads(line) for line in data.decode().splitlines()]


@pytest.mark.parametrize("worker", ["off", "on"])  # "on": HTTP worker and cache writer thread
def test_soak_faults_and_sigkills(make_server: MakeServer, worker: str) -> None:
    server = make_server(
        latency=0.01,
        fault_rate=0.2,
        fault_kinds=ALL_FAULTS,
        seed=7,
        hang_seconds=0.6,
        retry_after=0.01,
    )
    write_config(
        FAST + f"max_retries = 10\ntimeout = {TIMEOUT}\nmax_consecutive_failures = 200\n"
        f'http_worker = "{worker}"\n'
    )
    Path("seeds.jsonl").write_text(
        Path(__file__).parents[1].joinpath("seeds", "seed_tasks.jsonl").read_text()
    )
    argv = [sys.executable, "-m", "selfinstruct", "run", "--quiet", "--seeds", "seeds.jsonl"]
    argv += ["-n", str(TARGET), "--concurrency", str(CONCURRENCY), "--base-url", server.base_url]
    env = {**os.environ, "OPENAI_API_KEY": KEY}
    rng = random.Random(3)
    kills: list[float] = []
    for _ in range(KILLS):
        child = subprocess.Popen(argv, env=env, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.4, 1.5))
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            kills.append(time.monotonic())
        child.wait()
    before, seen = totals(), len(server.requests)
    deadline = time.monotonic() + 120
    while True:
        done = subprocess.run(argv, env=env, capture_output=True, text=True)
        if done.returncode == 0 or time.monotonic() > deadline:
            break
    assert done.returncode == 0, done.stderr
    assert len(kills) >= 2

    pool = Path("data")
    machine = records(pool / "instructions.jsonl")
    assert len(machine) == TARGET and len({r["id"] for r in machine}) == TARGET
    rejected = pool / "rejected_instructions.jsonl"  # absent when no candidate was rejected
    for path in (pool / "classifications.jsonl", pool / "instances.jsonl", rejected):
        ids = [r["id"] for r in records(path)] if path.exists() or path != rejected else []
        assert len(ids) == len(set(ids)), f"duplicate ids in {path}"
    assert {r["id"] for r in records(pool / "instances.jsonl")} <= {r["id"] for r in machine}

    rows = records(pool / "dataset.jsonl")
    assert rows and len({r["id"] for r in rows}) == len(rows)
    for row in rows:
        assert row["output"].strip() and row["input"].strip() != row["output"].strip()
        assert not row["output"].rstrip().endswith(":") and not row["input"].rstrip().endswith(":")
    triples = Counter((r["instruction"], r["input"], r["output"]) for r in rows)
    assert max(triples.values()) == 1
    kept_instructions = list(dict.fromkeys(r["instruction"] for r in rows))
    assert all(r.kept for r in dedup(kept_instructions, 0.7))

    # Within one process a reply is bought again only as a retry (the client did not get it in
    # time). Across a SIGKILL, only if the kill came while it was on the wire or within a second
    # of its reply, before the run could store it: a stored reply is never bought again.
    paid: dict[str, list[Recorded]] = {}
    for r in server.completed():
        paid.setdefault(json.dumps(r.body, sort_keys=True), []).append(r)
    repeats = [(a, b) for copies in paid.values() for a, b in itertools.pairwise(copies)]
    for first, again in repeats:
        assert first.answered is not None
        between = [k for k in kills if first.arrived <= k <= again.arrived]
        assert not between or any(k - first.answered < 1 for k in between), (first, kills)
    assert len(repeats) <= len(kills) * CONCURRENCY

    status = json.loads(
        subprocess.run([*argv[:3], "status", "--json"], capture_output=True, text=True).stdout
    )
    assert status["generate"]["done"] == TARGET and status["lock"] is None
    assert status["classify"]["done"] == len(records(pool / "classifications.jsonl"))
    assert status["instances"]["done"] == len(records(pool / "instances.jsonl"))
    assert status["classify"]["pending"] == 0 and status["instances"]["pending"] == 0
    assert status["filter"]["dataset"] == len(rows)

    # Since the last kill, run.json counts one paid request per request the server answered
    # (a body answered twice was retried: the client never got the first reply in time; a
    # "hang" answered as its client timed out may or may not have been read).
    after, since = totals(), {id(r) for r in server.requests[seen:]}
    for stage, max_tokens in STAGE_MAX_TOKENS.items():
        answered = [
            r
            for r in server.completed()
            if id(r) in since and (r.body or {}).get("max_tokens") == max_tokens
        ]
        bodies = {json.dumps(r.body, sort_keys=True) for r in answered}
        sure = {json.dumps(r.body, sort_keys=True) for r in answered if r.fault != "hang"}
        counted = after[stage]["requests"] - before.get(stage, {}).get("requests", 0)
        assert len(sure) <= counted <= len(bodies), stage
