"""`preferences` and `export --format dpo / dpo-chat`: candidates, the judge's additive scores,
the pair kept at a margin, the records, re-runs, failures, and both exports loaded with
`datasets`."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from selfinstruct.method.preference import MARGIN, PAIR, TIE, UNSCORED, Choice, choose
from selfinstruct.models import prompt_id
from tests import fakeprefs
from tests.fakejudge import CURATE_MARK, expected_score
from tests.fakeprovider import ParamRefusal
from tests.fakeserver import FakeOpenAI, prompt_text
from tests.pooldata import FAST, MakeServer, lines, write_config
from tests.pooldata import invoke as cli

ADDITIVE_MARK = "count how many the answer passes"


@pytest.mark.parametrize(
    ("scores", "margin", "choice"),
    [
        ([4, 1, 5, 2], 1, Choice(PAIR, 2, 1)),
        ([4, 1, 5, 2], 4, Choice(PAIR, 2, 1)),
        ([4, 5, 5, 4], 1, Choice(PAIR, 1, 0)),  # the first of the best, the first of the worst
        ([4, 5, 5, 4], 2, Choice(MARGIN)),
        ([3, 3, 3, 3], 1, Choice(TIE)),
        ([None, 3, None, 3], 1, Choice(TIE)),  # unscored ones take no part
        ([None, 5, 1, None], 1, Choice(PAIR, 1, 2)),
        ([None, 4, None, None], 1, Choice(UNSCORED)),
        ([None, None], 1, Choice(UNSCORED)),
    ],
)
def test_choose_keeps_best_and_worst_at_the_margin(
    scores: list[int | None], margin: int, choice: Choice
) -> None:
    assert choose(scores, margin) == choice


@pytest.fixture(autouse=True)
def setup() -> None:
    write_config(FAST)


def write_dataset(count: int) -> list[dict[str, str]]:
    """A pool with `count` dataset rows (every third with an input) and nothing else."""
    rows = [
        {
            "instruction": f"Describe item number {k} of the list in two sentences.",
            "input": f"Item {k}: a red bicycle." if k % 3 == 0 else "",
            "output": "done",
        }
        for k in range(count)
    ]
    Path("data").mkdir()
    Path("data/seeds.jsonl").write_text("")
    Path("data/dataset.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def user(row: dict[str, Any]) -> str:
    return f"{row['instruction']}\n\n{row['input']}" if row["input"] else row["instruction"]


def expected(row: dict[str, Any], candidates: int = 4) -> list[tuple[str, int | None]]:
    """What the fake generator writes and what the fake judge scores it."""
    texts = [fakeprefs.candidate(user(row), k).strip() for k in range(candidates)]
    return [
        (t, None if "NO-VERDICT" in t else expected_score(row["instruction"], row["input"], t))
        for t in texts
    ]


def judge_bodies(server: FakeOpenAI) -> list[dict[str, Any]]:
    return [b for b in server.bodies() if ADDITIVE_MARK in prompt_text(b)]


def candidate_bodies(server: FakeOpenAI) -> list[dict[str, Any]]:
    return [b for b in server.bodies() if "seed" in b]


def test_preferences_pair_best_and_worst_and_rerun_asks_nothing(make_server: MakeServer) -> None:
    server = make_server()
    rows = write_dataset(30)
    result = cli(server, "preferences", "--no-progress")
    assert result.exit_code == 0, result.output
    records = {r["id"]: r for r in lines("data/preferences.jsonl")}
    assert len(records) == 30
    counts = {PAIR: 0, TIE: 0, MARGIN: 0, UNSCORED: 0}
    for row in rows:
        rec = records[prompt_id(row["instruction"], row["input"])]
        want = expected(row)
        assert [(c["text"], c["score"]) for c in rec["candidates"]] == want
        assert all(c["reason"] for c in rec["candidates"] if c["score"] is not None)
        choice = choose([s for _, s in want], 1)
        counts[choice.outcome] += 1
        assert rec["outcome"] == choice.outcome
        if choice.chosen is not None and choice.rejected is not None:
            assert rec["chosen"] == want[choice.chosen][0]
            assert rec["rejected"] == want[choice.rejected][0]
            assert rec["chosen_score"] - rec["rejected_score"] >= 1
        else:
            assert rec["chosen"] is None and rec["rejected"] is None
        assert rec["judge"].startswith("gpt-4o-mini@") and rec["candidates_asked"] == 4
    assert counts[PAIR] and counts[TIE]  # the fake gives both
    assert re.search(rf"pairs +{counts[PAIR]} of 30 prompts", result.stdout)
    assert f"{counts[PAIR]} pair, {counts[TIE]} tie, 0 margin" in result.stdout
    # one request with n = 4 per prompt, sampled
    bodies = candidate_bodies(server)
    assert [(b["seed"], b["n"], b["temperature"]) for b in bodies] == [(0, 4, 0.8)] * 30
    stages = json.loads(Path("data/run.json").read_text())["stages"]
    assert stages["preferences"]["totals"]["requests"] == 30  # one paid request each, not 4
    assert stages["preferences_judge"]["totals"]["requests"] == len(judge_bodies(server))
    judged = len(judge_bodies(server))
    assert judged >= 120  # one per candidate, and a retry for each reply without a score
    sent = len(server.bodies())
    again = cli(server, "preferences", "--no-progress")
    assert again.exit_code == 0 and "Nothing to do: all 30 prompts" in again.stdout
    assert len(server.bodies()) == sent
    # another margin: a new record per prompt from the cache, nothing asked twice
    wider = cli(server, "preferences", "--no-progress", "--margin", "2")
    assert wider.exit_code == 0, wider.output
    assert len(server.bodies()) == sent
    assert re.search(r"generator requests +0 sent, 120 from cache", wider.stdout)
    assert json.loads(Path("data/run.json").read_text())["stages"]["preferences"]
    assert len(lines("data/preferences.jsonl")) == 60
    second = [r for r in lines("data/preferences.jsonl") if r["margin"] == 2]
    for rec in second:
        scores = [c["score"] for c in rec["candidates"]]
        assert rec["outcome"] == choose(scores, 2).outcome
    assert any(r["outcome"] == MARGIN for r in second)  # 4 against 5 is not enough at 2


def test_export_dpo_and_dpo_chat_load_with_datasets(make_server: MakeServer) -> None:
    datasets = pytest.importorskip("datasets")
    server = make_server()
    rows = write_dataset(12)
    assert cli(server, "preferences", "--no-progress").exit_code == 0
    kept = [r for r in lines("data/preferences.jsonl") if r["outcome"] == PAIR]
    result = cli(None, "export", "--format", "dpo", "--out", "dpo.jsonl")
    assert result.exit_code == 0, result.output
    assert f"{len(kept)} (preference pairs of gpt-4o-mini x4" in result.stdout
    plain = datasets.load_dataset("json", data_files="dpo.jsonl", split="train")
    assert plain.column_names == ["prompt", "chosen", "rejected"]
    by_id = {prompt_id(r["instruction"], r["input"]): r for r in rows}
    assert plain["prompt"] == [user(by_id[r["id"]]) for r in kept]
    assert plain["chosen"] == [r["chosen"] for r in kept]
    assert plain["rejected"] == [r["rejected"] for r in kept]
    args = ("export", "--format", "dpo-chat", "--system", "Be brief.")
    assert cli(None, *args, "--out", "chat.jsonl").exit_code == 0
    assert cli(None, *args, "--out", "chat.parquet").exit_code == 0
    for chat in (
        datasets.load_dataset("json", data_files="chat.jsonl", split="train"),
        datasets.load_dataset("parquet", data_files="chat.parquet", split="train"),
    ):
        assert len(chat) == len(kept)
        first = chat[0]
        assert first["prompt"] == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": user(by_id[kept[0]["id"]])},
        ]
        assert first["chosen"] == [{"role": "assistant", "content": kept[0]["chosen"]}]
        assert first["rejected"] == [{"role": "assistant", "content": kept[0]["rejected"]}]
    bad = cli(None, "export", "--format", "dpo", "--out", "x.jsonl", "--include-seeds")
    assert bad.exit_code == 2 and "seed tasks have no preference pairs" in bad.stderr


def test_judge_down_leaves_every_prompt_for_the_next_run(make_server: MakeServer) -> None:
    server = make_server()
    write_dataset(1)
    down = "http://127.0.0.1:9/v1"
    args = ("preferences", "--no-progress", "--candidates", "2")
    result = cli(server, *args, "--judge-base-url", down)
    assert result.exit_code == 4, result.output
    assert "1 prompts without a record (their requests failed)" in result.output
    assert lines("data/preferences.jsonl") == []
    failures = lines("data/failures.jsonl")
    assert [f["stage"] for f in failures] == ["preferences_judge"] * 2
    assert "connection refused" in failures[0]["error"] and "sk-test" not in result.output
    assert len(candidate_bodies(server)) == 1  # both candidates in one request (n = 2)
    result = cli(server, *args)
    assert result.exit_code == 0, result.output
    assert len(lines("data/preferences.jsonl")) == 1
    assert len(candidate_bodies(server)) == 1  # the candidates came from the cache
    assert re.search(r"generator requests +0 sent, 2 from cache", result.stdout)


def test_a_failed_candidate_leaves_its_prompt_for_the_next_run(make_server: MakeServer) -> None:
    server = make_server()
    write_dataset(1)
    server.script("500")  # one candidate request fails, and it has no retries
    result = cli(server, "preferences", "--no-progress", "--max-retries", "0")
    assert result.exit_code == 4, result.output
    assert lines("data/preferences.jsonl") == []
    assert cli(server, "preferences", "--no-progress").exit_code == 0
    assert len(lines("data/preferences.jsonl")) == 1


def test_no_dataset_yet_is_a_one_line_error(make_server: MakeServer) -> None:
    server = make_server()
    Path("data").mkdir()
    Path("data/seeds.jsonl").write_text("")
    result = cli(server, "preferences")
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: data/dataset.jsonl does not exist yet: run `selfinstruct filter` first\n"
    )
    assert server.bodies() == []
    result = cli(None, "export", "--format", "dpo", "--out", "dpo.jsonl")
    assert result.exit_code == 2 and "run `selfinstruct preferences` first" in result.stderr
    assert not Path("dpo.jsonl").exists()


def test_another_judge_model_is_another_record_set(make_server: MakeServer) -> None:
    server = make_server()
    write_dataset(4)
    assert cli(server, "preferences", "--no-progress", "--candidates", "2").exit_code == 0
    generated = len(candidate_bodies(server))
    other = cli(server, "preferences", "--no-progress", "--candidates", "2", "--judge-model", "j2")
    assert other.exit_code == 0, other.output
    judges = [r["judge"].split("@")[0] for r in lines("data/preferences.jsonl")]
    assert judges == ["gpt-4o-mini"] * 4 + ["j2"] * 4
    assert len(candidate_bodies(server)) == generated  # the same candidates, from the cache
    assert {b["model"] for b in judge_bodies(server)} == {"gpt-4o-mini", "j2"}
    assert CURATE_MARK in prompt_text(judge_bodies(server)[0])


def test_completions_api_is_refused_before_any_request(make_server: MakeServer) -> None:
    server = make_server()
    write_dataset(2)
    result = cli(server, "preferences", "--api", "completions")
    assert result.exit_code == 2 and "chat model" in result.stderr
    assert server.bodies() == []


def records_by_id() -> dict[str, list[tuple[str, int | None]]]:
    return {
        r["id"]: [(c["text"], c["score"]) for c in r["candidates"]]
        for r in lines("data/preferences.jsonl")
    }


@pytest.mark.parametrize("how", ["no-n", "refused", "ignored"])
def test_candidates_one_by_one_are_the_same_candidates(make_server: MakeServer, how: str) -> None:
    """Without `n` (--no-use-n, a server that refuses it, one that ignores it) each candidate
    is its own request, and the records are those of one request with n."""
    with_n = make_server()
    rows = write_dataset(6)
    assert cli(with_n, "preferences", "--no-progress").exit_code == 0
    want = records_by_id()
    Path("data/preferences.jsonl").unlink()
    Path("data/cache.sqlite").unlink()
    refusal = ParamRefusal("n", style="vllm") if how == "refused" else None
    server = make_server(refuse_params=refusal)
    flag = {"no-n": ["--no-use-n"], "refused": [], "ignored": ["--model", fakeprefs.IGNORES_N]}[how]
    result = cli(server, "preferences", "--no-progress", *flag)
    assert result.exit_code == 0, result.output
    assert records_by_id() == want
    # one request per candidate; a server that ignores n gave candidate 0 in its one choice
    first = 1 if how == "ignored" else 0
    alone = [b["seed"] for b in candidate_bodies(server) if "n" not in b]
    assert sorted(alone) == sorted(list(range(first, 4)) * len(rows))
    if how == "refused":
        assert re.search(r"refused n +left out", result.stdout)
    if how == "ignored":
        assert re.search(r"refused n +asked one by one", result.stdout)


def test_a_judge_that_scores_everything_alike_is_named(make_server: MakeServer) -> None:
    def flat(body: dict[str, Any]) -> str:
        if ADDITIVE_MARK in prompt_text(body):
            return "Reason: fine.\nScore: 3"
        return fakeprefs.reply(body) or ""

    server = make_server(reply=flat)
    write_dataset(12)
    result = cli(server, "preferences", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "only 0 of 12 prompts gave a pair - 12 had candidates scored alike" in result.stdout
    assert {r["outcome"] for r in lines("data/preferences.jsonl")} == {TIE}


def test_max_requests_stops_and_the_next_run_finishes(make_server: MakeServer) -> None:
    server = make_server()
    write_dataset(5)
    result = cli(
        server, "preferences", "--no-progress", "--max-requests", "6", "--concurrency", "1"
    )
    assert result.exit_code == 3, result.output
    assert "reached --max-requests 6" in result.output
    assert len(server.bodies()) <= 6
    done = len(lines("data/preferences.jsonl"))
    assert done < 5
    result = cli(server, "preferences", "--no-progress")
    assert result.exit_code == 0, result.output
    assert len(lines("data/preferences.jsonl")) == 5
    assert f"({done} done before)" in result.stdout


def test_batch_mode_candidates_then_scores_and_nothing_twice(make_server: MakeServer) -> None:
    server = make_server()
    rows = write_dataset(5)
    first = cli(server, "preferences", "--batch")
    assert first.exit_code == 0, first.output
    assert re.search(r"submitted +20\b", first.stdout)  # 5 prompts x 4 candidates, no n
    assert lines("data/preferences.jsonl") == [] and candidate_bodies(server) == []
    assert server.finish_batches()
    second = cli(server, "preferences", "--batch")  # the candidates in; the judge's submitted
    assert second.exit_code == 0, second.output
    judged = {
        (r["instruction"], r["input"], t) for r in rows for t, _ in expected(r)
    }  # one judge request per distinct candidate
    assert re.search(rf"submitted +{len(judged)}\b", second.stdout)
    assert server.finish_batches()
    retries = cli(server, "preferences", "--batch")  # the scores in; retries for none
    assert retries.exit_code == 0, retries.output
    while server.finish_batches():
        assert cli(server, "preferences", "--batch").exit_code == 0
    records = {r["id"]: r for r in lines("data/preferences.jsonl")}
    assert len(records) == 5
    for row in rows:
        rec = records[prompt_id(row["instruction"], row["input"])]
        assert [(c["text"], c["score"]) for c in rec["candidates"]] == expected(row)
        assert rec["outcome"] == choose([s for _, s in expected(row)], 1).outcome
    assert judge_bodies(server) == [] and candidate_bodies(server) == []  # nothing online
    sent = len(server.bodies())  # the batches' uploads and creations
    online = cli(server, "preferences", "--no-progress")
    assert online.stdout.startswith("Nothing to do") and len(server.bodies()) == sent
    stages = json.loads(Path("data/run.json").read_text())["stages"]
    assert stages["preferences"]["totals"]["batched"] == 20
    events = lines("data/batches.jsonl")
    assert {e["stage"] for e in events} == {"preferences", "preferences_judge"}


def test_batch_mode_with_a_judge_on_its_own_server(make_server: MakeServer) -> None:
    generator, judge = make_server(), make_server()
    write_dataset(3)
    args = ("preferences", "--batch", "--candidates", "2", "--judge-base-url", judge.base_url)
    for _ in range(5):
        assert cli(generator, *args).exit_code == 0
        generator.finish_batches()
        judge.finish_batches()
    assert len(lines("data/preferences.jsonl")) == 3
    assert judge_bodies(generator) == [] and candidate_bodies(judge) == []
    events = {e["stage"] for e in lines("data/batches.jsonl")}
    assert events == {"preferences", "preferences_judge"}
