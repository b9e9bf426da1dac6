"""`selfinstruct stats`: the paper's table, the figures' data, and the verb/object heuristic."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from selfinstruct.cli import app
from selfinstruct.method.similarity import rouge_l
from selfinstruct.models import stable_id
from selfinstruct.outputs.stats import histogram, rouge_vs_seeds, verb_object

SEEDS = [
    ("Name a primary colour of paint.", False, [("", "Red")]),
    ("Decide whether the sentence is positive or negative.", True, [("I love it.", "Positive")]),
]
# (instruction, is_classification or None when stage 2 has no answer, instances)
MACHINE: list[tuple[str, bool | None, list[tuple[str, str]]]] = [
    (
        "Write a short poem about the sea.",
        False,
        [("", "Waves roll in and out."), ("", "Blue water sings.")],
    ),
    (
        "Classify the sentiment of the review.",
        True,
        [("Great food and service.", "Positive"), ("Cold soup.", "Negative")],
    ),
    ("Please tell me a joke about cats.", None, []),
    ("Given a list of numbers, find the median value.", False, [("3, 9, 4", "4")]),
]
KEPT = [(0, 0), (0, 1), (1, 0), (3, 0)]  # (task, instance) pairs in dataset.jsonl
REJECTS = [
    {"id": "i-1", "rule": "too_similar", "instruction": "x", "detail": "ROUGE-L 0.800 with: y"},
    {"id": "i-2", "rule": "not_classified", "instruction": "Please tell me a joke about cats."},
    {"id": "i-3", "rule": "too_similar", "instruction": "z"},
]


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def write(path: Path, records: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def make_pool(root: Path = Path("data"), dataset: bool = True) -> Path:
    """The hand-made pool above: two seeds, four machine tasks, a dataset and its rejects."""
    write(
        root / "seeds.jsonl",
        [
            {
                "id": f"seed_task_{k}",
                "name": "s",
                "instruction": text,
                "is_classification": flag,
                "instances": [{"input": a, "output": b} for a, b in inst],
            }
            for k, (text, flag, inst) in enumerate(SEEDS)
        ],
    )
    ids = [stable_id("i", text) for text, _, _ in MACHINE]
    write(
        root / "instructions.jsonl",
        [
            {"id": i, "instruction": t, "request": "r", "round": 0}
            for i, (t, _, _) in zip(ids, MACHINE, strict=True)
        ],
    )
    write(
        root / "classifications.jsonl",
        [
            {"id": i, "instruction": t, "is_classification": c, "answer": "x", "request": "r"}
            for i, (t, c, _) in zip(ids, MACHINE, strict=True)
            if c is not None
        ],
    )
    write(
        root / "instances.jsonl",
        [
            {
                "id": i,
                "instruction": t,
                "is_classification": bool(c),
                "prompt_kind": "input_first",
                "instances": [{"input": a, "output": b} for a, b in inst],
                "raw": "",
                "finish_reason": "stop",
                "request": "r",
            }
            for i, (t, c, inst) in zip(ids, MACHINE, strict=True)
            if inst
        ],
    )
    if dataset:
        rows = []
        for t, k in KEPT:
            text, flag, inst = MACHINE[t]
            rows.append(
                {
                    "id": f"{ids[t]}-{k}",
                    "instruction": text,
                    "input": inst[k][0],
                    "output": inst[k][1],
                    "is_classification": flag,
                }
            )
        write(root / "dataset.jsonl", rows)
        write(root / "filter_rejects.jsonl", REJECTS)
    return root


def bins(*counts: tuple[int, int]) -> list[int]:
    """A list of 14 length-bin counts, zero except the given (bin, count) pairs."""
    out = [0] * 14
    for k, n in counts:
        out[k] = n
    return out


def test_stats_json_has_exact_numbers_for_a_hand_made_pool() -> None:
    make_pool()
    result = run("stats", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert list(doc) == [
        "pool",
        "seeds",
        "machine",
        "dataset",
        "rouge_vs_seeds",
        "verbs",
        "lengths",
        "filter_rules",
        "diversity",
        "curation",
        "review",
    ]
    assert doc["curation"] is None and doc["review"] is None  # no judge has been asked
    assert doc["pool"] == "data"
    assert doc["seeds"] == {
        "instructions": 2,
        "classification": 1,
        "non_classification": 1,
        "unclassified": 0,
        "instances": 2,
        "empty_input": 1,
        "mean_instruction_words": 7.0,
        "mean_input_words": 3.0,
        "mean_output_words": 1.0,
    }
    assert doc["machine"] == {
        "instructions": 4,
        "classification": 1,
        "non_classification": 2,
        "unclassified": 1,
        "instances": 5,
        "empty_input": 2,
        "mean_instruction_words": 7.25,
        "mean_input_words": 3.0,
        "mean_output_words": 2.2,
    }
    assert doc["dataset"] == {
        "instructions": 3,
        "classification": 1,
        "non_classification": 2,
        "unclassified": 0,
        "instances": 4,
        "empty_input": 2,
        "mean_instruction_words": 7.33,
        "mean_input_words": 3.5,
        "mean_output_words": 2.5,
    }
    # Best against the seeds: 2/13, 2/12, 2/13 (one shared word each) and 4/15 (two words).
    rouge = doc["rouge_vs_seeds"]
    assert [b["count"] for b in rouge["bins"]] == [0, 3, 1, 0, 0, 0, 0, 0, 0, 0]
    assert [(b["lo"], b["hi"]) for b in rouge["bins"]][::9] == [(0.0, 0.1), (0.9, 1.0)]
    assert rouge["instructions"] == 4
    assert rouge["mean"] == round((2 / 13 + 2 / 12 + 2 / 13 + 4 / 15) / 4, 4)
    assert doc["verbs"] == [
        {"verb": "classify", "count": 1, "objects": {"sentiment": 1}},
        {"verb": "find", "count": 1, "objects": {"value": 1}},
        {"verb": "tell", "count": 1, "objects": {"joke": 1}},
        {"verb": "write", "count": 1, "objects": {"poem": 1}},
    ]
    lengths = doc["lengths"]
    assert lengths["source"] == "dataset"
    assert [b["count"] for b in lengths["instruction"]] == bins((1, 3))
    assert [b["count"] for b in lengths["input"]] == bins((0, 2))
    assert [b["count"] for b in lengths["output"]] == bins((0, 3), (1, 1))
    assert lengths["output"][0] == {"lo": 0, "hi": 5, "count": 3}
    assert lengths["output"][-1] == {"lo": 300, "hi": None, "count": 0}
    assert doc["filter_rules"] == {"too_similar": 2, "not_classified": 1}


def test_stats_text_is_aligned_tables() -> None:
    make_pool()
    result = run("stats")
    assert result.exit_code == 0, result.output
    sections = result.stdout.split("\n\n")
    assert sections[0] == (
        "stats: data\n"
        "                           seeds  machine  dataset\n"
        "  instructions                 2        4        3\n"
        "    classification             1        1        1\n"
        "    non-classification         1        2        2\n"
        "    unclassified               0        1        0\n"
        "  instances                    2        5        4\n"
        "    with empty input           1        2        2\n"
        "  mean words: instruction    7.0      7.2      7.3\n"
        "    non-empty input          3.0      3.0      3.5\n"
        "    output                   1.0      2.2      2.5"
    )
    rouge = sections[1].splitlines()
    assert rouge[0] == (
        "ROUGE-L of each machine instruction with its most similar seed (4 instructions, mean 0.19)"
    )
    assert rouge[1:4] == [
        "  0.0-0.1  0",
        "  0.1-0.2  3  ########################################",
        "  0.2-0.3  1  #############",
    ]
    assert sections[2].splitlines()[1:3] == [
        "  verb      count  top objects",
        "  classify      1  sentiment 1",
    ]
    assert sections[3].splitlines()[:3] == [
        "Lengths in words (dataset; inputs: non-empty only)",
        "  words    instruction  input  output",
        "  0-4                0      2       3",
    ]
    assert sections[4] == (
        "Dropped by `selfinstruct filter`, per rule\n  too_similar     2\n  not_classified  1"
    )
    assert sections[5].splitlines()[1:4] == [
        "                            pool",
        "  instructions: MTLD        33.6",
        "    distinct-1             0.759",
    ]


def test_stats_before_filter_uses_the_pool() -> None:
    make_pool(dataset=False)
    result = run("stats", "--json")
    doc = json.loads(result.stdout)
    assert doc["dataset"] is None and doc["filter_rules"] == {}
    assert doc["lengths"]["source"] == "pool"
    assert [b["count"] for b in doc["lengths"]["output"]] == bins((0, 4), (1, 1))
    text = run("stats").stdout
    assert text.startswith("stats: data (no dataset.jsonl yet)\n")
    assert "  (nothing dropped, or filter not run yet)" in text


def test_stats_on_a_directory_that_is_not_a_pool() -> None:
    result = run("stats", "--pool", "nowhere")
    assert result.exit_code == 2
    assert result.stderr == "Error: no pool at nowhere (create one with --seeds)\n"


def test_stats_names_a_damaged_line() -> None:
    make_pool()
    with open("data/dataset.jsonl", "a") as fp:
        fp.write('{"id": "x", "instruction": "y"}\n')
    result = run("stats")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: data/dataset.jsonl line 5: field 'output': Field")


@pytest.mark.parametrize(
    ("instruction", "verb", "obj"),
    [
        ("Write a short cover letter for a job.", "write", "letter"),
        ("Given a sentence, classify its sentiment.", "classify", "sentiment"),
        ("Please, tell me a joke about cats.", "tell", "joke"),
        ("Kindly give me three tips for sleeping well", "give", "tips"),
        ("Explain why the sky is blue.", "explain", None),
        ("Answer frequently asked questions about taxes.", "answer", "questions"),
        ("Sketch a 45-minute lesson plan on fractions.", "sketch", "plan"),
        ("Write a poem describing the sea", "write", "poem"),
        ("Generate a list of 10 names.", "generate", "list"),
        ("If the input is a question, answer it.", "answer", None),
        ("Translate", "translate", None),
        ("5 ways to relax", None, None),
        ("", None, None),
        ("Écris un poème.", "écris", "poème"),  # words stay whole; stop lists are English
    ],
)
def test_verb_object_heuristic(instruction: str, verb: str | None, obj: str | None) -> None:
    assert verb_object(instruction) == (verb, obj)


@pytest.mark.parametrize(
    ("instruction", "verb"),
    [
        # A role, a manner or a condition before the comma is skipped like "Given ...,".
        ("As a chef, suggest a menu for a picnic.", "suggest"),
        ("As a beginner, how should I start running?", "how"),
        ("Acting as a travel agent, plan a weekend in Lisbon.", "plan"),
        ("Pretending to be a pirate, describe your ship.", "describe"),
        ("Playing the role of a coach, motivate a tired team.", "motivate"),
        ("Speaking as a historian, explain the fall of Rome.", "explain"),
        ("Without using a calculator, estimate 19 times 21.", "estimate"),
        ("Without a calculator, what is 17 times 23?", "what"),
        ("While keeping the meaning, shorten this sentence.", "shorten"),
        ("Before answering, restate the question.", "restate"),
        ("Once you have read the text, summarize it.", "summarize"),
        ("Unless the list is empty, return its largest item.", "return"),
        ("Although it is hard, describe your worst day.", "describe"),
        ("Since the input is a recipe, list its ingredients.", "list"),
        # Opener words and phrases are skipped with or without a comma.
        ("Step by step, solve 3x + 2 = 11.", "solve"),
        ("Step by step explain how a bill becomes law.", "explain"),
        ("Briefly explain what the Magna Carta was.", "explain"),
        ("One by one, name the planets.", "name"),
        ("In short, why do cats purr?", "why"),
        ("Please, as a tutor, check my answer.", "check"),
        ("Now if the input is a question, answer it.", "answer"),
        # Ordinary instructions keep their own first word, even one that looks like an opener.
        ("Act as a tour guide and describe the old town.", "act"),
        ("Pretend you are a cat and describe your day.", "pretend"),
        ("Step through this code and report each variable.", "step"),
        ("Play the devil's advocate on remote work.", "play"),
        ("As a chef I need menu ideas", "as"),  # no comma: the opener cannot be told apart
        ("Classify the text as formal or informal.", "classify"),
        ("Describe a day without electricity, in the present tense.", "describe"),
        ("Summarize the passage step by step.", "summarize"),
        ("Rewrite the email as a pirate would, keeping it short.", "rewrite"),
    ],
)
def test_leading_verb_skips_roles_manners_and_conditions(instruction: str, verb: str) -> None:
    assert verb_object(instruction)[0] == verb


def test_histogram_bins_are_half_open_with_an_open_last_bin() -> None:
    got = histogram([0, 4, 5, 9, 10, 299, 300, 5000], edges=(0, 5, 10, 300))
    assert [(b.lo, b.hi, b.count) for b in got] == [
        (0, 5, 2),
        (5, 10, 2),
        (10, 300, 2),
        (300, None, 2),
    ]


def test_rouge_bins_put_exact_scores_in_the_right_bin() -> None:
    seeds = ["a b c d e f g h i j"]
    texts = ["a b c d e f g h i j", "a b c d e f g x y z", "q r s", "a x y z w v u t s r"]
    assert [rouge_l(seeds[0], t) for t in texts] == [1.0, 0.7, 0.0, pytest.approx(0.1)]
    got = rouge_vs_seeds(seeds, texts)
    assert [b.count for b in got.bins] == [1, 1, 0, 0, 0, 0, 0, 1, 0, 1]
    assert got.mean == 0.45
    empty = rouge_vs_seeds(seeds, [])
    assert empty.mean is None and sum(b.count for b in empty.bins) == 0
