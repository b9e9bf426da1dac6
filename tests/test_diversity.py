"""Lexical diversity (outputs/diversity.py): MTLD, distinct-n and mean pairwise ROUGE-L, against
hand-computed values and values the lexicalrichness package (0.5.1) gives, and in `stats`."""

from __future__ import annotations

import itertools
import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfinstruct.method.similarity import mean_pairwise, rouge_l, tokenize
from selfinstruct.models import MachineInstruction, stable_id
from selfinstruct.outputs.diversity import distinct, diversity_figures, encode, mtld
from tests.pooldata import SEEDS, invoke

WORDS = ["".join(p) for p in itertools.product("abcdefgh", repeat=2)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # forward: a | a (TTR 1/2) ends a factor, twice -> 4 / 2; backward the same
        ("a a a a", 2.0),
        # TTR never reaches 0.72: one partial factor (1 - 3/4) / (1 - 0.72) both ways
        ("a b c a", 4 / (0.25 / 0.28)),
        # every token new: the partial factor is 0, so the whole text is one factor
        ("a b c", 3.0),
        # forward: "b a b" and "a b a" end factors, "c" is left with TTR 1 -> 7 / 2;
        # backward: "c a b a b" ends one (3/5), "a b" is left with TTR 1 -> 7 / 1
        ("b a b a b a c", (3.5 + 7.0) / 2),
    ],
)
def test_mtld_hand_computed(text: str, expected: float) -> None:
    assert mtld(text.split()) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("seed", "n", "vocab", "published"),
    [(0, 500, 40, 28.125), (1, 2000, 64, 41.88508582588139), (2, 300, 8, 5.42261404981808)],
)
def test_mtld_equals_lexicalrichness(seed: int, n: int, vocab: int, published: float) -> None:
    """LexicalRichness(" ".join(tokens)).mtld() on the same tokens, recorded from 0.5.1."""
    rng = random.Random(seed)
    tokens = [rng.choice(WORDS[:vocab]) for _ in range(n)]
    assert mtld(tokens) == published


def test_mtld_of_a_sentence_as_lexicalrichness_tokenizes_it() -> None:
    text = (
        "The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs away, and the "
        "quick dog follows the fox over the hill."
    )
    ids, _ = encode([text])
    assert mtld(ids) == 13.626506024096386
    assert mtld([]) is None


def test_distinct_counts_ngrams_inside_each_text() -> None:
    ids, starts = encode(["a b c a", "a b d"])
    array = np.array(ids)
    assert distinct(array, starts, 1) == 4 / 7
    # "a b", "b c", "c a" | "a b", "b d": the pair across the texts ("a a") does not count
    assert distinct(array, starts, 2) == 4 / 5
    one_word = encode(["a", "b", "a"])
    assert distinct(np.array(one_word[0]), one_word[1], 2) is None


def test_mean_pairwise_is_the_mean_of_rouge_l_over_all_pairs() -> None:
    assert mean_pairwise(["a b c a", "a b d"]) == pytest.approx(4 / 7)  # LCS 2: P 2/3, R 2/4
    rng = random.Random(5)
    texts = [" ".join(rng.choices(WORDS[:12], k=rng.randint(0, 15))) for _ in range(300)]
    pairs = list(itertools.combinations(texts, 2))
    expected = sum(rouge_l(a, b) for a, b in pairs) / len(pairs)
    assert mean_pairwise(texts) == pytest.approx(expected, rel=1e-12)
    assert mean_pairwise(texts[:1]) is None


def test_figures_sample_is_seeded() -> None:
    texts = [f"task {i} about {WORDS[i % 30]} and {WORDS[(i * 7) % 50]}" for i in range(50)]
    one, again, other = (
        diversity_figures(texts, 1, 20),
        diversity_figures(texts, 1, 20),
        diversity_figures(texts, 2, 20),
    )
    assert one == again and one.rouge_sample == 20 and one.rouge_l != other.rouge_l
    assert one.mtld == other.mtld and one.texts == 50


def test_stats_shows_diversity_before_and_after_evolve() -> None:
    root = Path("data")
    root.mkdir()
    seeds = [{"id": "s", "instruction": SEEDS[0], "instances": [{"output": "ok"}]}]
    (root / "seeds.jsonl").write_text(json.dumps(seeds[0]) + "\n")
    base = ["Write a poem about the sea", "Write a poem about the sky"]
    grown = "Contrast tidal energy with offshore wind for a coastal town council"
    records = [
        MachineInstruction(id=stable_id("i", t), instruction=t, request="k", round=0) for t in base
    ]
    records.append(
        MachineInstruction(
            id=stable_id("i", grown),
            instruction=grown,
            request="e",
            round=1,
            parent=records[0].id,
            operation="breadth",
        )
    )
    (root / "instructions.jsonl").write_text("".join(r.model_dump_json() + "\n" for r in records))
    result = invoke(None, "stats", "--json")
    assert result.exit_code == 0, result.output
    before, after = json.loads(result.stdout)["diversity"]
    assert (before["label"], after["label"]) == ("before evolve", "after evolve")
    assert before["instructions"] == diversity_figures(base).model_dump()
    assert after["instructions"] == diversity_figures([*base, grown]).model_dump()
    assert after["instructions"]["distinct_1"] > before["instructions"]["distinct_1"]
    text = invoke(None, "stats").stdout
    assert "before evolve  after evolve" in text


def test_the_python_api_example(capsys: pytest.CaptureFixture[str]) -> None:
    """docs/python.md's diversity block. By hand: 14 tokens, 10 types; MTLD: forward, the
    factor ends at the 13th token ("about", 9/13) and "rain" is left with TTR 1, backward at
    the 14th (10/14): 14 / 1 both ways; ROUGE-L: only the two poems share words (LCS 4 of 6
    and 5: F 8/11), over 3 pairs."""
    doc = Path(__file__).resolve().parents[1] / "docs" / "python.md"
    block = re.findall(r"```python\n(.*?)```", doc.read_text(), re.S)[2]
    exec(compile(block, str(doc), "exec"), {})
    assert capsys.readouterr().out == f"14 14.0 {10 / 14:.3f} {8 / 11 / 3:.3f}\n"


@given(st.lists(st.text(alphabet="Ab c-dÉİΣ\x00\t1ﬁ ", max_size=20), max_size=6))
@settings(max_examples=300, deadline=None)
def test_encode_gives_tokenize_tokens_and_text_offsets(texts: list[str]) -> None:
    """One pass over the joined texts: the same tokens as tokenize, text by text."""
    ids, starts = encode(texts)
    vocab: dict[str, int] = {}
    expected = [vocab.setdefault(w, len(vocab)) for t in texts for w in tokenize(t)]
    assert ids == expected
    assert starts.tolist() == [0, *itertools.accumulate(len(tokenize(t)) for t in texts)]
