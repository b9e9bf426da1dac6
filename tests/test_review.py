"""`selfinstruct review`: the paper's four questions by the judge, the table and its arithmetic,
`--compare`, and the whole path `run --curate` -> `filter --min-score 4` -> `review`."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from selfinstruct.method.judging import wilson
from selfinstruct.models import instance_id
from selfinstruct.stages.judge import Item
from selfinstruct.stages.review import sample
from tests.fakejudge import REVIEW_MARK, expected_answers, expected_score
from tests.fakeserver import FakeOpenAI, prompt_text
from tests.pooldata import FAST, MakeServer, lines, write_config, write_seeds
from tests.pooldata import invoke as cli

RECORDS = [
    {"instruction": "Name three primary colours.", "input": "", "output": "Red, yellow and blue."},
    {"instruction": "Name colours.", "input": "", "output": "Red."},
    {
        "instruction": "Translate the sentence into French.",
        "input": "Sure! The sentence is: Good morning.",
        "output": "Bonjour.",
    },
    {
        "instruction": "Write a haiku about rain.",
        "input": "",
        "output": "Write a haiku about rain. Rain falls on the roof.",
    },
    {"instruction": "Sort the numbers ascending.", "input": "3, 1, 2", "output": "1, 2, 3"},
    {"instruction": "Give a synonym of happy.", "input": "", "output": ""},
]


@pytest.fixture(autouse=True)
def setup() -> None:
    write_config(FAST)
    write_seeds()


def review_bodies(server: FakeOpenAI) -> list[dict[str, Any]]:
    return [b for b in server.bodies() if REVIEW_MARK in prompt_text(b)]


def write_records(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.mark.parametrize(
    ("yes", "n", "low", "high"),
    [
        (50, 100, 0.4038, 0.5962),  # p = 0.5: the textbook case
        (0, 10, 0.0, 0.2775),  # no yes: the upper end is z^2 / (n + z^2)
        (10, 10, 0.7225, 1.0),  # all yes: the lower end is n / (n + z^2)
        (0, 0, 0.0, 1.0),  # nothing answered: nothing known
    ],
)
def test_wilson_interval_matches_known_values(yes: int, n: int, low: float, high: float) -> None:
    assert wilson(yes, n) == pytest.approx((low, high), abs=5e-5)


def score_test_accepts(yes: int, n: int, p0: float) -> bool:
    """Whether the two-sided 95% score test keeps p0: the interval is where it does."""
    return abs(yes / n - p0) <= 1.959963984540054 * math.sqrt(p0 * (1 - p0) / n)


def edge(yes: int, n: int, inside: float, outside: float) -> float:
    for _ in range(60):
        middle = (inside + outside) / 2
        inside, outside = (
            (middle, outside) if score_test_accepts(yes, n, middle) else (inside, middle)
        )
    return inside


@pytest.mark.parametrize(("yes", "n"), [(184, 200), (158, 200), (116, 200), (108, 200), (3, 7)])
def test_wilson_interval_inverts_the_score_test(yes: int, n: int) -> None:
    """The paper's 92/79/58/54% of 200, and a small sample: the ends found by bisection."""
    p = yes / n
    assert wilson(yes, n) == pytest.approx((edge(yes, n, p, 0.0), edge(yes, n, p, 1.0)), abs=1e-9)


def test_the_sample_is_seeded_and_distinct() -> None:
    items = [Item.of(f"Task number {k}.", "", f"answer {k}") for k in range(50)]
    first = sample(items + items[:5], 10, seed=3)
    assert first == sample(items, 10, seed=3) and len(first) == 10
    assert first != sample(items, 10, seed=4)
    assert sample(items[:4], 10, seed=3) == items[:4]


def test_review_a_file_gives_the_table_and_records(make_server: MakeServer) -> None:
    server = make_server()
    src = write_records(Path("data.jsonl"), RECORDS)
    result = cli(server, "review", str(src), "--no-progress")
    assert result.exit_code == 0, result.output
    expected = [expected_answers(r["instruction"], r["input"], r["output"]) for r in RECORDS]
    records = {r["id"]: r for r in lines("data/review.jsonl")}
    assert len(records) == len(RECORDS)
    for r, want in zip(RECORDS, expected, strict=True):
        rec = records[instance_id(r["instruction"], r["input"], r["output"])]
        assert rec["answers"] == want and len(rec["reasons"]) == 4
    yes = [sum(e[q] for e in expected) for q in range(4)]
    assert yes == [5, 5, 4, 2]  # the records cover each rule of the fake judge
    lines_out = result.stdout.splitlines()
    assert lines_out[0].split() == ["question", "yes", "[95%", "CI]", "paper"]
    low, high = wilson(4, 6)
    assert f"67% [{low:.0%}-{high:.0%}] (4/6)  58%" in result.stdout
    assert "all fields are valid" in result.stdout and "(2/6)  54%" in result.stdout
    column = json.loads(Path("data/run.json").read_text())["review"]["columns"][0]
    assert [row["yes"] for row in column["rows"]] == yes
    assert column["rows"][3]["failures"][0]["reason"]
    asked = len(review_bodies(server))
    assert asked == len(RECORDS)
    assert cli(server, "review", str(src)).exit_code == 0
    assert len(review_bodies(server)) == asked  # nothing asked twice


def test_compare_reviews_two_datasets_with_one_judge(make_server: MakeServer) -> None:
    server = make_server()
    before = write_records(Path("before.jsonl"), RECORDS)
    good = [r for r in RECORDS if expected_score(r["instruction"], r["input"], r["output"]) >= 4]
    after = write_records(Path("after.jsonl"), good)
    result = cli(server, "review", str(before), "--compare", str(after), "-n", "5")
    assert result.exit_code == 0, result.output
    header = result.stdout.splitlines()[0].split()
    assert header == ["question", "before.jsonl", "after.jsonl", "paper"]
    assert "before.jsonl: 5 sampled" in result.stdout and "after.jsonl: 4 sampled" in result.stdout
    # the instances both samples share were asked once
    assert len(review_bodies(server)) == len({r["id"] for r in lines("data/review.jsonl")})


def test_unparsable_replies_and_a_missing_dataset(make_server: MakeServer) -> None:
    server = make_server()
    records = [*RECORDS[:2], {"instruction": "Say hi.", "input": "", "output": "hi NO-VERDICT"}]
    src = write_records(Path("data.jsonl"), records)
    result = cli(server, "review", str(src))
    assert result.exit_code == 0, result.output
    assert "3 sampled, 1 unanswered" in result.stdout and "unparsed  1" in result.stdout
    assert len(review_bodies(server)) == 4  # the third asked twice
    missing = cli(server, "review", "nope.jsonl")
    assert missing.exit_code == 2 and missing.stderr == "Error: nope.jsonl: file not found\n"


def test_run_curate_then_filter_then_review(make_server: MakeServer) -> None:
    server = make_server()
    result = cli(server, "run", "--seeds", "seeds.jsonl", "-n", "16", "--curate")
    assert result.exit_code == 0, result.output
    assert re.search(r"\n  judge +gpt-4o-mini@\w{12}\n  curate +\d+ instances: ", result.stdout)
    assert re.search(r"\n  score 5 +\d+ classification, \d+ other\n", result.stdout)
    assert re.search(r"\n  curate requests +\d+ sent", result.stdout)
    sets = lines("data/instances.jsonl")
    every = {
        instance_id(s["instruction"], i["input"], i["output"]) for s in sets for i in s["instances"]
    }
    assert {r["id"] for r in lines("data/curation.jsonl")} == every
    full = lines("data/dataset.jsonl")
    result = cli(None, "filter", "--min-score", "4")
    assert result.exit_code == 0, result.output
    kept = lines("data/dataset.jsonl")
    assert kept == [
        r for r in full if expected_score(r["instruction"], r["input"], r["output"]) >= 4
    ]
    result = cli(server, "review", "-n", "10")
    assert result.exit_code == 0, result.output
    reviewed = lines("data/review.jsonl")
    assert len(reviewed) == min(10, len(kept))
    for rec in reviewed:
        assert rec["answers"][2] is True  # curated: every output the judge rates correct
    stats = json.loads(cli(None, "stats", "--json").stdout)
    assert stats["review"]["columns"][0]["sampled"] == len(reviewed)
    scores = stats["curation"]["scores"]
    assert sum(sum(c.values()) for c in scores.values()) == len(every)
    text = cli(None, "stats").stdout
    assert "Scores by `selfinstruct curate`" in text and "Review by gpt-4o-mini@" in text
    assert cli(None, "report", "--out", "report.html").exit_code == 0
    page = Path("report.html").read_text(encoding="utf-8")
    assert "What the judge says" in page and "all fields are valid" in page
    assert "beside the paper&#x27;s Table 2" in page or "beside the paper's Table 2" in page
    again = cli(server, "run", "--curate", "--quiet")
    assert again.exit_code == 0 and len(lines("data/curation.jsonl")) == len(every)
