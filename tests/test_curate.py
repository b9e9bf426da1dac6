"""`curate` and `filter --min-score`: the judge's scores, re-runs, batch mode, files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from selfinstruct.method.judging import parse_answers, parse_reason, parse_score
from selfinstruct.models import instance_id
from tests.fakejudge import CURATE_MARK, expected_score
from tests.fakeserver import FakeOpenAI, prompt_text
from tests.pooldata import FAST, MakeServer, lines, write_config, write_seeds
from tests.pooldata import invoke as cli

RECORDS = [
    {"instruction": "Name three primary colours.", "input": "", "output": "Red, yellow and blue."},
    {"instruction": "Name three primary colours.", "input": "", "output": ""},
    {
        "instruction": "Translate the sentence into French.",
        "input": "Good morning.",
        "output": "Sure! Here is the translation: Bonjour.",
    },
    {
        "instruction": "Write a haiku about rain.",
        "input": "",
        "output": "Write a haiku about rain. Rain falls on the roof.",
    },
    {"instruction": "Sort the numbers.", "input": "3, 1, 2", "output": "1, 2, 3"},
    {"instruction": "Give a synonym of happy.", "output": "Joyful NO-VERDICT"},
    {"instruction": "Give an antonym of happy.", "output": "Sad SECOND-TRY"},
]


@pytest.fixture(autouse=True)
def setup() -> None:
    write_config(FAST)
    write_seeds()


def judge_bodies(server: FakeOpenAI) -> list[dict[str, Any]]:
    return [b for b in server.bodies() if CURATE_MARK in prompt_text(b)]


def write_records(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ("Score: 4", 4),
        ("4/5", 4),
        ("**4**", 4),
        ('{"reason": "fine", "score": 5}', 5),
        ("Reason: thin.\n\n**Rating:** 2 out of 5", 2),
        ("Overall I would give it a 3/5.", 3),
        ("Final score: 1", 1),
        ("5", 5),
        ("Score: 4.5", None),
        ('{"score": 7}', None),
        ("Somewhere between 2/5 and 4/5.", None),
        ("I cannot grade this.", None),
    ],
)
def test_scores_are_read_as_chat_models_write_them(reply: str, score: int | None) -> None:
    assert parse_score(reply) == score


def test_reasons_and_answers_are_read_tolerantly() -> None:
    assert parse_reason("Reason: It is right.\nScore: 5") == "It is right."
    assert parse_reason('```json\n{"score": 2, "reason": "Repeats."}\n```') == "Repeats."
    text = "Here you go:\n1. Yes - clear\n2. **No** - the input is missing\n3. Yes\n4. No."
    assert parse_answers(text, 4) == [
        (True, "clear"),
        (False, "the input is missing"),
        (True, ""),
        (False, ""),
    ]
    assert parse_answers("1. Yes\n2. No\n3. Yes", 4) is None  # a question left unanswered


def test_curate_a_file_keeps_what_the_judge_rates_high(make_server: MakeServer) -> None:
    server = make_server()
    src = write_records(Path("alpaca.jsonl"), RECORDS)
    result = cli(server, "curate", str(src), "--out", "kept.jsonl", "--min-score", "4")
    assert result.exit_code == 0, result.output
    kept = lines("kept.jsonl")
    expected = [
        r
        for r in RECORDS
        if "NO-VERDICT" not in r["output"]
        and expected_score(r["instruction"], r.get("input", ""), r["output"]) >= 4
    ]
    assert [{k: v for k, v in r.items() if not k.startswith("_")} for r in kept] == expected
    assert all(r["_score"] in (4, 5) and r["_reason"] for r in kept)
    records = {r["id"]: r for r in lines("data/curation.jsonl")}
    assert len(records) == len(RECORDS)
    for r in RECORDS:
        rec = records[instance_id(r["instruction"], r.get("input", ""), r["output"])]
        want = (
            None
            if "NO-VERDICT" in r["output"]
            else expected_score(r["instruction"], r.get("input", ""), r["output"])
        )
        assert rec["score"] == want and rec["judge"].startswith("gpt-4o-mini@")
    # one retry each for the two replies without a score at temperature 0
    assert len(judge_bodies(server)) == len(RECORDS) + 2
    assert "judged" in result.stdout and "unparsed  1" in result.stdout.replace("   ", "  ")
    again = cli(server, "curate", str(src), "--out", "kept2.jsonl", "--min-score", "4")
    assert again.exit_code == 0, again.output
    assert len(judge_bodies(server)) == len(RECORDS) + 2  # nothing asked twice
    assert lines("kept2.jsonl") == kept


def test_another_judge_is_another_score_set(make_server: MakeServer) -> None:
    server = make_server()
    src = write_records(Path("alpaca.json"), RECORDS[:3])
    src.write_text(json.dumps(RECORDS[:3]))  # a JSON list, as Alpaca ships
    assert cli(server, "curate", str(src), "--out", "a.json").exit_code == 0
    other = cli(server, "curate", str(src), "--out", "b.json", "--judge-model", "judge-2")
    assert other.exit_code == 0, other.output
    judges = [r["judge"].split("@")[0] for r in lines("data/curation.jsonl")]
    assert judges == ["gpt-4o-mini"] * 3 + ["judge-2"] * 3
    assert len(json.loads(Path("b.json").read_text())) == 3
    assert {b["model"] for b in judge_bodies(server)} == {"gpt-4o-mini", "judge-2"}


def test_bad_file_lines_are_named(make_server: MakeServer) -> None:
    server = make_server()
    Path("bad.jsonl").write_text(
        json.dumps(RECORDS[0]) + "\n" + json.dumps({"instruction": "x"}) + "\n"
    )
    result = cli(server, "curate", "bad.jsonl", "--out", "kept.jsonl")
    assert result.exit_code == 2
    assert result.stderr == "Error: bad.jsonl line 2: field 'output': missing\n"
    Path("bad.jsonl").write_text('{"instruction": "x", "output": 3}\n')
    result = cli(server, "curate", "bad.jsonl", "--out", "kept.jsonl")
    assert result.stderr == "Error: bad.jsonl line 1: field 'output': not a string\n"
    Path("bad.jsonl").write_text('{"instruction": "x", "output": "y"\n')
    result = cli(server, "curate", "bad.jsonl", "--out", "kept.jsonl")
    assert result.stderr.startswith("Error: bad.jsonl line 1: invalid JSON")
    assert not Path("kept.jsonl").exists() and judge_bodies(server) == []


def test_judge_server_down_leaves_the_work_for_the_next_run(make_server: MakeServer) -> None:
    server = make_server()
    src = write_records(Path("alpaca.jsonl"), RECORDS[:2])
    down = "http://127.0.0.1:9/v1"
    result = cli(server, "curate", str(src), "--out", "kept.jsonl", "--judge-base-url", down)
    assert result.exit_code == 4, result.output
    assert "2 instances unscored (their requests failed)" in result.output
    failures = lines("data/failures.jsonl")
    assert [f["stage"] for f in failures] == ["curate", "curate"]
    assert "connection refused" in failures[0]["error"] and "sk-test" not in result.output
    assert lines("data/curation.jsonl") == [] and not Path("kept.jsonl").exists()
    result = cli(server, "curate", str(src), "--out", "kept.jsonl")
    assert result.exit_code == 0 and len(lines("data/curation.jsonl")) == 2


def pool_rows() -> list[dict[str, Any]]:
    return lines("data/dataset.jsonl")


def test_curate_the_pool_then_filter_keeps_scored_k_or_more(make_server: MakeServer) -> None:
    server = make_server()
    assert cli(server, "run", "--seeds", "seeds.jsonl", "-n", "12", "--quiet").exit_code == 0
    before = pool_rows()
    result = cli(None, "filter", "--min-score", "4")
    assert result.exit_code == 2 and "run `selfinstruct curate` first" in result.stderr
    result = cli(server, "curate")
    assert result.exit_code == 0, result.output
    assert "score 5" in result.stdout and "classification" in result.stdout
    sets = lines("data/instances.jsonl")
    every = {
        instance_id(s["instruction"], i["input"], i["output"]): (s["instruction"], i)
        for s in sets
        for i in s["instances"]
    }
    scored = {r["id"]: r for r in lines("data/curation.jsonl")}
    assert set(scored) == set(every)
    for key, (instruction, inst) in every.items():
        assert scored[key]["score"] == expected_score(instruction, inst["input"], inst["output"])
    asked = len(judge_bodies(server))
    again = cli(server, "curate").stdout
    assert again.startswith(
        f"Nothing to do: all {len(every)} instances have scores from gpt-4o-mini@"
    )
    assert "score 5" in again and len(judge_bodies(server)) == asked
    result = cli(None, "filter", "--min-score", "5")
    assert result.exit_code == 0, result.output
    after = pool_rows()
    assert after and len(after) < len(before)
    assert {r["id"] for r in after} <= {r["id"] for r in before} | {r["id"] for r in after}
    for row in after:
        assert expected_score(row["instruction"], row["input"], row["output"]) == 5
    dropped = [r for r in lines("data/filter_rejects.jsonl") if r["rule"] == "low_score"]
    assert dropped and all(r["detail"].startswith("score 4 by gpt-4o-mini@") for r in dropped)
    assert "low_score" in result.stdout


def test_curate_batch_collects_scores_and_asks_nothing_twice(make_server: MakeServer) -> None:
    server = make_server()
    assert cli(server, "run", "--seeds", "seeds.jsonl", "-n", "8", "--quiet").exit_code == 0
    every = {
        instance_id(s["instruction"], i["input"], i["output"]): (s["instruction"], i)
        for s in lines("data/instances.jsonl")
        for i in s["instances"]
    }
    first = cli(server, "curate", "--batch")
    assert first.exit_code == 0, first.output
    assert lines("data/curation.jsonl") == []
    assert f"submitted  {len(every)}" in first.stdout
    assert judge_bodies(server) == []  # nothing online: the requests wait in the batch
    waiting = cli(server, "curate", "--batch")
    assert f"waiting    {len(every)}" in waiting.stdout and "submitted  0" in waiting.stdout
    assert server.finish_batches()
    second = cli(server, "curate", "--batch")
    assert second.exit_code == 0, second.output
    records = {r["id"]: r for r in lines("data/curation.jsonl")}
    assert set(records) == set(every)
    for key, (instruction, inst) in every.items():
        assert records[key]["score"] == expected_score(instruction, inst["input"], inst["output"])
    assert "submitted  0" in second.stdout
    totals = json.loads(Path("data/run.json").read_text())["stages"]["curate"]["totals"]
    assert totals["requests"] == totals["batched"] == len(every)
    online = cli(server, "curate")
    assert online.stdout.startswith("Nothing to do") and judge_bodies(server) == []  # batch
    events = lines("data/batches.jsonl")
    assert {e["stage"] for e in events} == {"curate"} and events[-1]["state"] == "collected"


def test_a_judge_of_its_own_with_its_own_key(make_server: MakeServer) -> None:
    generator = make_server()
    judge = make_server(api_key="sk-judge-secret-1")
    assert cli(generator, "run", "--seeds", "seeds.jsonl", "-n", "6", "--quiet").exit_code == 0
    Path("selfinstruct.toml").write_text(
        FAST + f'[judge]\nmodel = "judge-large"\nbase_url = "{judge.base_url}"\n'
        "[filter]\nmin_score = 5\n"
    )
    result = cli(generator, "curate", "--judge-api-key", "sk-judge-secret-1")
    assert result.exit_code == 0, result.output
    assert judge_bodies(generator) == [] and {b["model"] for b in judge_bodies(judge)} == {
        "judge-large"
    }
    assert all(r["judge"].startswith("judge-large@") for r in lines("data/curation.jsonl"))
    filtered = cli(None, "filter")  # [filter] min_score = 5
    assert filtered.exit_code == 0 and "low_score" in filtered.stdout
    for path in Path("data").iterdir():
        if path.is_file() and path.suffix in (".jsonl", ".json"):
            assert "sk-judge-secret" not in path.read_text(), path
    assert "sk-judge-secret" not in result.output
    src = write_records(Path("one.jsonl"), RECORDS[:1])
    wrong = cli(generator, "curate", str(src), "--out", "k.jsonl", "--judge-api-key", "sk-wrong")
    assert wrong.exit_code == 1 and wrong.stderr.startswith(f"Error: 401 from {judge.base_url}")
    assert "sk-wrong" not in wrong.output and not Path("k.jsonl").exists()


def test_a_budget_cap_stops_curate_and_the_next_run_finishes(make_server: MakeServer) -> None:
    server = make_server()
    src = write_records(Path("alpaca.jsonl"), RECORDS[:5])
    capped = cli(server, "curate", str(src), "--out", "kept.jsonl", "--max-requests", "3")
    assert capped.exit_code == 3, capped.output
    assert "Stopped: reached --max-requests 3" in capped.stderr
    assert len(lines("data/curation.jsonl")) == 3 and not Path("kept.jsonl").exists()
    rest = cli(server, "curate", str(src), "--out", "kept.jsonl")
    assert rest.exit_code == 0, rest.output
    assert "2 instances (3 scored before)" in rest.stdout
    assert len(judge_bodies(server)) == 5 and len(lines("data/curation.jsonl")) == 5


def test_a_bad_judge_setting_names_its_flag_or_line(make_server: MakeServer) -> None:
    server = make_server()
    src = write_records(Path("alpaca.jsonl"), RECORDS[:1])
    result = cli(server, "curate", str(src), "--out", "k.jsonl", "--judge-base-url", "localhost")
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: --judge-base-url: 'localhost' is not an http(s) URL; "
        "pass e.g. --judge-base-url http://localhost:8000/v1\n"
    )
    Path("selfinstruct.toml").write_text(FAST + "[judge]\nmax_tokens = 4\n")
    result = cli(server, "curate", str(src), "--out", "k.jsonl")
    assert result.exit_code == 2 and result.stderr.startswith(
        "Error: selfinstruct.toml line 3: [judge] setting 'max_tokens': "
    )
    assert judge_bodies(server) == [] and not Path("data/curation.jsonl").exists()


def test_a_judge_that_ignores_the_format_is_named_in_a_warning(make_server: MakeServer) -> None:
    server = make_server()
    records = [RECORDS[0], {"instruction": "Say hi.", "output": "hi NO-VERDICT"}]
    src = write_records(Path("alpaca.jsonl"), records)
    result = cli(server, "curate", str(src), "--out", "kept.jsonl")
    assert result.exit_code == 0, result.output
    assert "warning   1 replies held no 1-5 score even when asked twice" in result.stdout
    assert [r["score"] for r in lines("data/curation.jsonl")] == [
        expected_score(RECORDS[0]["instruction"], "", RECORDS[0]["output"]),
        None,
    ]
    assert len(lines("kept.jsonl")) == 1  # the unscored record is not kept
