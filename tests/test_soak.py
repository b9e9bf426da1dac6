"""Soak: the whole pipeline under 20% faults of every kind, killed with SIGKILL at random moments
and restarted until done. Bounded to well under a minute."""

from __future__ import annotations

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

from fakeserver import ALL_FAULTS
from pooldata import FAST, KEY, MakeServer, write_config
from selfinstruct.similarity import dedup

TARGET, KILLS, CONCURRENCY = 60, 4, 4


def records(path: Path) -> list[dict[str, Any]]:
    data = path.read_bytes()
    assert data.endswith(b"\n"), f"torn last line in {path}"
    return [json.loads(line) for line in data.decode().splitlines()]


def test_soak_faults_and_sigkills(make_server: MakeServer) -> None:
    server = make_server(
        latency=0.01, fault_rate=0.2, fault_kinds=ALL_FAULTS, seed=7, hang_seconds=0.6,
        retry_after=0.01,
    )  # fmt: skip
    write_config(FAST + "max_retries = 10\ntimeout = 0.4\nmax_consecutive_failures = 200\n")
    Path("seeds.jsonl").write_text(
        Path(__file__).parents[1].joinpath("seeds", "seed_tasks.jsonl").read_text()
    )
    argv = [sys.executable, "-m", "selfinstruct", "run", "--quiet", "--seeds", "seeds.jsonl"]
    argv += ["-n", str(TARGET), "--concurrency", str(CONCURRENCY), "--base-url", server.base_url]
    env = {**os.environ, "OPENAI_API_KEY": KEY}
    rng = random.Random(3)
    kills = 0
    for _ in range(KILLS):
        child = subprocess.Popen(argv, env=env, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.4, 1.5))
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            kills += 1
        child.wait()
    deadline = time.monotonic() + 120
    while True:
        done = subprocess.run(argv, env=env, capture_output=True, text=True)
        if done.returncode == 0 or time.monotonic() > deadline:
            break
    assert done.returncode == 0, done.stderr
    assert kills >= 2

    pool = Path("data")
    machine = records(pool / "instructions.jsonl")
    assert len(machine) == TARGET and len({r["id"] for r in machine}) == TARGET
    for name in ("classifications.jsonl", "instances.jsonl", "rejected_instructions.jsonl"):
        ids = [r["id"] for r in records(pool / name)]
        assert len(ids) == len(set(ids)), f"duplicate ids in {name}"
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

    paid = Counter(json.dumps(r.body, sort_keys=True) for r in server.completed())
    repeats = sum(n - 1 for n in paid.values())
    assert (
        repeats <= kills * CONCURRENCY
    )  # only replies still on the wire at a kill are bought again

    status = json.loads(
        subprocess.run([*argv[:3], "status", "--json"], capture_output=True, text=True).stdout
    )
    assert status["generate"]["done"] == TARGET and status["lock"] is None
    assert status["classify"]["done"] == len(records(pool / "classifications.jsonl"))
    assert status["instances"]["done"] == len(records(pool / "instances.jsonl"))
    assert status["classify"]["pending"] == 0 and status["instances"]["pending"] == 0
    assert status["filter"]["dataset"] == len(rows)
