"""`selfinstruct backtranslate` and `run --backtranslate` end to end against the fake server."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result

from selfinstruct.config import BacktranslateSettings
from selfinstruct.stages.backtranslate import Piece, plan
from tests.fakebacktranslate import ACCEPTED_KINDS, instruction_for, kind_of, segment_of
from tests.fakeserver import FakeOpenAI, fixed_reply, prompt_text
from tests.pooldata import FAST, KEY, SEEDS, MakeServer, invoke, lines, write_config, write_seeds

CORPUS = Path(__file__).parent / "fixtures" / "corpus"


@pytest.fixture(autouse=True)
def setup() -> None:
    write_config(FAST + "max_consecutive_failures = 3\n")
    write_seeds()
    shutil.copytree(CORPUS, "corpus")


def cli(server: FakeOpenAI | None, *args: str) -> Result:
    return invoke(server, *args, "--no-progress") if server else invoke(None, *args)


def pieces() -> list[Piece]:
    return plan(Path("corpus"), BacktranslateSettings())[0]


def check_pool() -> dict[str, Any]:
    """Every segment ends as the fake server's kind says; the records are whole and linked."""
    kept = {r["source"]["segment"]: r for r in lines("data/instructions.jsonl")}
    rejects = {r["id"]: r for r in lines("data/backtranslate_rejects.jsonl")}
    sets = {r["id"]: r for r in lines("data/instances.jsonl")}
    classes = {r["id"]: r for r in lines("data/classifications.jsonl")}
    generic = []
    for p in pieces():
        kind = kind_of(p.text)
        want = instruction_for(p.text)
        if kind == "generic":
            generic.append(p.id)
            continue
        if kind == "answer":
            assert rejects[p.id]["reason"] == "not_a_request"
            assert rejects[p.id]["instruction"] == want
            continue
        assert kind in ACCEPTED_KINDS
        rec = kept[p.id]
        assert rec["instruction"] == want and rec["source"] == p.source.model_dump()
        got = sets[rec["id"]]
        assert got["instances"] == [{"input": "", "output": p.text}]
        assert got["prompt_kind"] == "backtranslated" and got["is_classification"] is False
        assert classes[rec["id"]]["is_classification"] is False
        assert got["request"] == classes[rec["id"]]["request"] == rec["request"]
    # the generic "Summarize ... about X." instructions: the first one in, the rest too similar
    assert sum(g in kept for g in generic) == 1
    for g in (g for g in generic if g not in kept):
        assert rejects[g]["reason"] == "too_similar"
        assert rejects[g]["detail"].startswith("ROUGE-L 0.889 with: Summarize the main points")
    assert len(kept) + len(rejects) == len(pieces())
    return {"kept": len(kept), "rejected": Counter(r["reason"] for r in rejects.values())}


def test_the_corpus_into_the_pool_then_filter_export_and_stats(make_server: MakeServer) -> None:
    server = make_server()
    result = cli(server, "backtranslate", "corpus", "--seeds", "seeds.jsonl")
    assert result.exit_code == 0, result.output
    counts = check_pool()
    assert counts == {"kept": 18, "rejected": Counter(not_a_request=2, too_similar=2)}
    assert re.search(r"texts\s+5 read, 23 segments, 1 skipped\n\s+too_short\s+1\n", result.stdout)
    assert re.search(r"pool\s+\+18 instructions with their answer", result.stdout)
    assert re.search(r"requests\s+22 sent, 0 from cache, 0 failed", result.stdout)
    # the few-shot prompt: seed answers first, then their instruction, then the segment
    prompt = prompt_text(server.bodies()[0])
    assert prompt.count("\nInstruction: ") == 3 and prompt.endswith("\nInstruction:")
    assert segment_of(prompt) in {p.text for p in pieces()}
    filtered = cli(None, "filter")
    assert filtered.exit_code == 0, filtered.output
    dataset = lines("data/dataset.jsonl")
    assert len(dataset) == 18 and {d["input"] for d in dataset} == {""}
    assert {d["output"] for d in dataset} <= {p.text for p in pieces()}
    assert cli(None, "export", "--format", "alpaca", "--out", "a.json").exit_code == 0
    assert len(json.loads(Path("a.json").read_text())) == 18
    stats = cli(None, "stats", "--json")
    assert stats.exit_code == 0, stats.output
    # a re-run asks nothing and says so; classify and instances have nothing to do either
    again = cli(server, "backtranslate", "corpus")
    assert again.exit_code == 0
    assert again.stdout.startswith("Nothing to do: 22 segments of corpus were done by earlier")
    assert "Nothing to do" in cli(server, "classify").stdout
    assert "Nothing to do" in cli(server, "instances").stdout
    assert len(server.requests) == 22


def test_the_completions_api(make_server: MakeServer) -> None:
    server = make_server()
    result = cli(
        server, "backtranslate", "corpus", "--seeds", "seeds.jsonl", "--api", "completions"
    )
    assert result.exit_code == 0, result.output
    assert check_pool()["kept"] == 18
    assert server.bodies()[0]["stop"] == ["\n\n", "\nAnswer:"]


def test_new_text_only_is_asked_and_the_pool_is_checked_for_near_duplicates(
    make_server: MakeServer,
) -> None:
    server = make_server()
    assert cli(server, "backtranslate", "corpus", "--seeds", "seeds.jsonl").exit_code == 0
    server.requests.clear()
    extra = "The kettle manual in another words. " + " ".join(["More words follow here."] * 8)
    Path("corpus/extra.txt").write_text(extra + "\n")
    result = cli(server, "backtranslate", "corpus")
    assert result.exit_code == 0, result.output
    assert len(server.requests) == 1
    assert re.search(r"done before\s+22 segments", result.stdout)
    [body] = server.bodies()
    assert segment_of(prompt_text(body)) == extra.strip()


def test_instructions_like_the_pools_are_rejected_and_the_yield_warns(
    make_server: MakeServer,
) -> None:
    server = make_server(reply=fixed_reply(f"Sure! Here is the instruction:\n\n{SEEDS[2]}"))
    result = cli(server, "backtranslate", "corpus", "--seeds", "seeds.jsonl")
    assert result.exit_code == 0, result.output
    rejects = lines("data/backtranslate_rejects.jsonl")
    assert {r["reason"] for r in rejects} == {"too_similar"} and len(rejects) == 22
    assert rejects[0]["detail"] == f"ROUGE-L 1.000 with: {SEEDS[2]}"
    assert not Path("data/instructions.jsonl").exists()
    assert "backtranslate: only 0 of 22 segments got an instruction that passed the rules " in (
        " ".join(result.stdout.split())
    )


def test_failed_requests_are_asked_again_on_the_next_run(make_server: MakeServer) -> None:
    server = make_server(fault_rate=1.0, fault_kinds=["500"])
    result = cli(server, "backtranslate", "corpus", "--seeds", "seeds.jsonl", "--max-retries", "0")
    assert result.exit_code == 1, result.output  # the breaker: 3 failures in a row
    assert not Path("data/instructions.jsonl").exists()
    server.fault_rate = 0.0
    server.script("500", "500")
    partial = cli(server, "backtranslate", "corpus", "--max-retries", "0", "--concurrency", "1")
    assert partial.exit_code == 4, partial.output
    assert "Incomplete: 2 segments without an instruction" in partial.stderr
    assert re.search(r"failed\s+2\n", partial.stdout)
    assert len(lines("data/failures.jsonl")) >= 2
    sent = len(server.requests)
    done = cli(server, "backtranslate", "corpus")
    assert done.exit_code == 0, done.output
    assert len(server.requests) == sent + 2
    check_pool()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            '{"text": "A fine text."}\n{"body": "no text field"}\n',
            "Error: docs.jsonl line 2: field 'text': missing (fields: body; see --field)\n",
        ),
        ('{"text": "ok"}\n{"text": [1]}\n', "Error: docs.jsonl line 2: field 'text': expected "),
    ],
)
def test_a_bad_line_stops_before_anything_is_written(
    make_server: MakeServer, content: str, message: str
) -> None:
    server = make_server()
    Path("docs.jsonl").write_text(content)
    result = cli(server, "backtranslate", "docs.jsonl", "--seeds", "seeds.jsonl")
    assert result.exit_code == 2
    assert result.stderr.startswith(message)
    assert not server.requests and not Path("data").exists()


def test_jsonl_records_with_another_field(make_server: MakeServer) -> None:
    server = make_server()
    text = Path("corpus/kettle.md").read_text()
    Path("docs.jsonl").write_text(json.dumps({"id": 1, "body": text}) + "\n")
    result = cli(server, "backtranslate", "docs.jsonl", "--field", "body", "--seeds", "seeds.jsonl")
    assert result.exit_code == 0, result.output
    kept = lines("data/instructions.jsonl")
    assert {r["source"]["file"] for r in kept} == {"docs.jsonl"}
    assert {r["source"]["record"] for r in kept} == {1}
    assert len(server.requests) == 3


def test_a_budget_cap_stops_and_the_next_run_continues(make_server: MakeServer) -> None:
    server = make_server()
    args = ("backtranslate", "corpus", "--concurrency", "1")
    capped = cli(server, *args, "--seeds", "seeds.jsonl", "--max-requests", "5")
    assert capped.exit_code == 3, capped.output
    assert "Stopped: reached --max-requests 5; the pool is saved" in capped.stderr
    assert len(server.requests) == 5
    assert len(lines("data/instructions.jsonl") + lines("data/backtranslate_rejects.jsonl")) == 5
    rest = cli(server, *args)
    assert rest.exit_code == 0, rest.output
    assert re.search(r"done before\s+5 segments", rest.stdout)
    assert len(server.requests) == 22
    check_pool()


def test_a_reply_cut_at_max_tokens_is_rejected(make_server: MakeServer) -> None:
    server = make_server()
    server.script("length")
    result = cli(server, "backtranslate", "corpus", "--seeds", "seeds.jsonl", "--concurrency", "1")
    assert result.exit_code == 0, result.output
    [cut] = [r for r in lines("data/backtranslate_rejects.jsonl") if r["reason"] == "cut"]
    assert cut["detail"] == "the reply stopped at max_tokens"
    assert cut["id"] == pieces()[0].id  # the first segment, asked first


def test_a_window_option_and_a_first_run_without_seeds() -> None:
    first = cli(None, "backtranslate", "corpus", "--base-url", "http://127.0.0.1:9")
    assert first.exit_code == 2
    assert first.stderr == "Error: no pool at data (create one with --seeds)\n"
    result = cli(None, "backtranslate", "corpus", "--min-words", "50", "--max-words", "40")
    assert result.exit_code == 2
    assert "Error: --max-words: 40 is less than min_words (50)" in result.stderr
    write_config(FAST + "[backtranslate]\nmin_words = 100\nmax_words = 40\n")
    result = cli(None, "backtranslate", "corpus")
    assert result.stderr.startswith(
        "Error: selfinstruct.toml line 4: [backtranslate] setting 'max_words': 40 is less than"
    )


def test_the_config_table_sets_the_window(make_server: MakeServer) -> None:
    server = make_server()
    write_config(FAST + "[backtranslate]\nmin_words = 90\n")
    result = cli(server, "backtranslate", "corpus", "--seeds", "seeds.jsonl")
    assert result.exit_code == 0, result.output
    long = plan(Path("corpus"), BacktranslateSettings(min_words=90))[0]
    assert len(server.requests) == len(long) == 5
    assert re.search(r"texts\s+5 read, 23 segments, 18 skipped\n\s+too_short\s+18\n", result.stdout)


def test_batch_mode_gives_the_online_result(make_server: MakeServer) -> None:
    server = make_server()
    first = cli(server, "backtranslate", "corpus", "--seeds", "seeds.jsonl", "--batch")
    assert first.exit_code == 0, first.output
    assert re.search(r"submitted\s+22 requests in 1 file \(backtranslate 22\)", first.stdout)
    assert not Path("data/instructions.jsonl").exists()
    waiting = cli(server, "backtranslate", "corpus", "--batch")
    assert "submitted" not in waiting.stdout  # nothing twice while the batch is open
    online = cli(server, "backtranslate", "corpus")  # the online stage leaves them to the batch
    assert online.stdout == (
        "Nothing to send: 22 segments wait in open batches (`selfinstruct backtranslate "
        "corpus --batch` brings them in).\n"
    )
    server.finish_batches()
    collected = invoke(server, "batch", "collect")  # the generic command takes them in the cache
    assert collected.exit_code == 0, collected.output
    assert re.search(r"collected\s+1 batch: 22 responses", collected.stdout)
    assert not Path("data/instructions.jsonl").exists()  # only backtranslate applies them
    second = cli(server, "backtranslate", "corpus", "--batch")
    assert second.exit_code == 0, second.output
    assert re.search(r"pool\s+\+18 instructions with their answer", second.stdout)
    assert "collected" not in second.stdout
    assert check_pool() == {"kept": 18, "rejected": Counter(not_a_request=2, too_similar=2)}
    chat = [r for r in server.requests if r.path == "/v1/chat/completions"]
    assert not chat  # every reply came through the batch
    third = cli(server, "backtranslate", "corpus", "--batch")
    assert "submitted" not in third.stdout and re.search(r"done before\s+22", third.stdout)


def test_run_backtranslate_writes_the_dataset(make_server: MakeServer) -> None:
    server = make_server()
    result = invoke(server, "run", "--backtranslate", "corpus", "--seeds", "seeds.jsonl")
    assert result.exit_code == 0, result.output
    assert re.search(r"dataset\s+18 instances -> data/dataset.jsonl", result.stdout)
    assert len(lines("data/dataset.jsonl")) == 18
    assert json.loads(Path("data/run.json").read_text())["run"]["outcome"] == (
        "backtranslate, done"
    )
    server.requests.clear()
    again = invoke(server, "run", "--backtranslate", "corpus")
    assert again.exit_code == 0 and not server.requests


def test_run_backtranslate_in_batch_mode(make_server: MakeServer) -> None:
    server = make_server()
    first = invoke(server, "run", "--backtranslate", "corpus", "--seeds", "seeds.jsonl", "--batch")
    assert first.exit_code == 0, first.output
    assert not Path("data/dataset.jsonl").exists()
    server.finish_batches()
    second = invoke(server, "run", "--backtranslate", "corpus", "--batch")
    assert second.exit_code == 0, second.output
    assert len(lines("data/dataset.jsonl")) == 18


def test_as_a_user_runs_it(make_server: MakeServer) -> None:
    """The installed command in a subprocess, the key in the environment only."""
    server = make_server()
    env = {**os.environ, "OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": server.base_url}
    cmd = [sys.executable, "-m", "selfinstruct", "backtranslate", "corpus"]
    done = subprocess.run(
        [*cmd, "--seeds", "seeds.jsonl", "--no-progress"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("backtranslate: done\n")
    assert KEY not in Path("data/run.json").read_text()
    assert "backtranslate" in json.loads(Path("data/run.json").read_text())["stages"]
    status = subprocess.run(
        [sys.executable, "-m", "selfinstruct", "status", "--json"], capture_output=True, text=True
    )
    shown = json.loads(status.stdout)
    assert shown["classify"]["pending"] == 0
    assert shown["warnings"] == []  # 18 pairs that are no classification tasks: not stage 2's


def test_run_backtranslate_curate_scores_the_pairs_before_the_filter(
    make_server: MakeServer,
) -> None:
    """Self-curation as the backtranslation paper does it: the judge scores every pair, and
    `filter --min-score` keeps the best."""
    server = make_server()
    args = ("run", "--backtranslate", "corpus", "--curate")
    result = invoke(server, *args, "--seeds", "seeds.jsonl")
    assert result.exit_code == 0, result.output
    assert re.search(r"curate\s+18 instances: 18 judged", result.stdout)
    assert "curate requests" in result.stdout
    scores = [r["score"] for r in lines("data/curation.jsonl")]
    assert len(scores) == 18 and all(s in (1, 2, 3, 4, 5) for s in scores)
    assert len(lines("data/dataset.jsonl")) == 18  # no --min-score: all kept
    best = invoke(None, "filter", "--min-score", "4")
    assert best.exit_code == 0, best.output
    assert len(lines("data/dataset.jsonl")) == sum(s >= 4 for s in scores)
    server.requests.clear()
    again = invoke(server, *args)
    assert again.exit_code == 0 and not server.requests  # nothing asked twice
