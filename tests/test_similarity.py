"""ROUGE-L scores, the near-duplicate index and dedup agree exactly with rouge_score."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rouge_score import rouge_scorer

from selfinstruct.method import _prefix, similarity
from selfinstruct.method.similarity import DedupResult, RougeIndex, dedup, rouge_l, tokenize

SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
THRESHOLDS = [0.0, 0.25, 0.5, 0.6, 2 / 3, 0.7, 0.75, 0.8, 0.9, 1.0]
WORDS = ["a", "b", "c", "the", "cat", "dog", "İstanbul", "café", "日本", "x1", "42", "ß", "A"]
SEPARATORS = [" ", " ", " ", ", ", "! ", "-", "\n", " ... "]


def reference(target: str, prediction: str) -> float:
    """The rouge_score F-measure the project must reproduce."""
    return float(SCORER.score(target, prediction)["rougeL"].fmeasure)


def texts_from(words: list[str], seps: list[str]) -> str:
    """Join words with separators."""
    return "".join(w + s for w, s in zip(words, seps, strict=False))


text_st = st.builds(
    texts_from,
    st.lists(st.sampled_from(WORDS), max_size=12),
    st.lists(st.sampled_from(SEPARATORS), min_size=12, max_size=12),
)
near_st = st.builds(
    texts_from,
    st.lists(st.sampled_from(WORDS[:4]), max_size=9),
    st.lists(st.just(" "), min_size=9, max_size=9),
)
pool_text_st = st.one_of(text_st, near_st)
threshold_st = st.one_of(st.sampled_from(THRESHOLDS), st.floats(0.0, 1.0))


# Small internal limits push tiny inputs through the paths that normally only long texts take.
CONFIGS = [{}, {"_LONG": 3}, {"_TABLE": 5}, {"_LONG": 4, "_TABLE": 3}]


@contextmanager
def patched(module: ModuleType, **values: int) -> Iterator[None]:
    """Temporarily replace module constants."""
    saved = {name: getattr(module, name) for name in values}
    for name, value in values.items():
        setattr(module, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(module, name, value)


def brute_best(pool: list[str], text: str) -> tuple[float, int]:
    """Max reference F over the pool and the first index reaching it."""
    best, at = 0.0, -1
    for i, other in enumerate(pool):
        score = reference(other, text)
        if score > best:
            best, at = score, i
    return best, at


def brute_dedup(
    texts: list[str],
    threshold: float,
    against: list[str],
    score: Callable[[str, str], float] = reference,
    exact: bool = False,
) -> list[DedupResult]:
    """Sequential dedup with a brute-force scan of the kept pool."""
    pool = [(t, True, i) for i, t in enumerate(against)]
    out = []
    for pos, text in enumerate(texts):
        best, at = 0.0, -1
        for i, (other, _, _) in enumerate(pool):
            f = score(other, text)
            if f > best:
                best, at = f, i
        kept = best <= threshold
        match = DedupResult(kept, best, pool[at][2], pool[at][1]) if at >= 0 else None
        if kept:
            pool.append((text, False, pos))
        if match is None or (kept and not exact):
            out.append(DedupResult(kept, 0.0, -1, False))
        else:
            out.append(match)
    return out


@pytest.mark.parametrize(
    "text",
    [
        "",
        "!!! ... ???",
        "İstanbul",
        "café au lait",
        "日本語のテキスト",
        "Привет мир",
        "\u212a",  # Kelvin sign lowercases to ASCII k
        "straße ﬁne",
        "Hello, World! 123abc DEF_ghi",
        "the the the cat",
        "word " * 2000,
    ],
)
def test_tokenize_matches_rouge_score(text: str) -> None:
    assert tokenize(text) == SCORER._tokenizer.tokenize(text)


@given(text_st)
def test_tokenize_property(text: str) -> None:
    assert tokenize(text) == SCORER._tokenizer.tokenize(text)


BOUNDARY_10_10 = ("a b c d e f g h i j", "a b c d e f g x y z")
BOUNDARY_7_13 = ("a b c d e f g", "a b c d e f g h i j k l m")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        BOUNDARY_10_10,
        BOUNDARY_7_13,
        ("", ""),
        ("", "a"),
        ("!!!", "a"),
        ("日本語", "日本語"),
        ("İstanbul", "i stanbul"),
        ("café", "caf"),
        ("a a a b", "a b a a"),
        ("the cat the cat the", "cat the cat"),
        (" ".join(f"w{i % 37}" for i in range(3000)), " ".join(f"w{i % 41}" for i in range(2500))),
    ],
)
def test_rouge_l_table(a: str, b: str) -> None:
    assert rouge_l(a, b) == reference(a, b)
    assert rouge_l(b, a) == reference(b, a) == rouge_l(a, b)


def test_boundary_values() -> None:
    assert rouge_l(*BOUNDARY_10_10) == 0.7
    assert rouge_l(*BOUNDARY_7_13) == 0.7000000000000001


@given(pool_text_st, pool_text_st)
def test_rouge_l_property(a: str, b: str) -> None:
    assert rouge_l(a, b) == reference(a, b)


@pytest.mark.parametrize("t", THRESHOLDS + [0.3, 0.45, 0.55, 0.85, 0.95])
def test_alpha_and_prefix_len_match_definitions(t: float) -> None:
    sizes = np.arange(1, 90, dtype=np.int64)
    m, n = np.meshgrid(sizes, sizes)
    got = _prefix.alpha(m.ravel(), n.ravel(), t).reshape(m.shape)
    for (i, j), a in np.ndenumerate(got):
        need = [lcs for lcs in range(1, min(i, j) + 2) if similarity._f(lcs, i + 1, j + 1) > t]
        assert min(need[0] if need else 10**9, min(i, j) + 2) == min(a, min(i, j) + 2)
    for ell in (1, 2):
        prefix = _prefix.prefix_len(sizes, t, ell)
        for size, p in zip(sizes.tolist(), prefix.tolist(), strict=True):
            low = [k for k in range(1, size + 1) if similarity._f(k, k, size) > t]
            assert p == (min(size, max(0, size - low[0] + ell)) if low else 0)


@pytest.mark.parametrize("scan", [-1, 1024])
def test_index_boundary(scan: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(similarity, "_SCAN", scan)
    for pool, query, best, novel in [
        (BOUNDARY_10_10[0], BOUNDARY_10_10[1], 0.7, True),
        (BOUNDARY_7_13[0], BOUNDARY_7_13[1], 0.7000000000000001, False),
    ]:
        for extend in (True, False):
            index = RougeIndex()
            index.extend([pool]) if extend else index.add(pool)
            assert index.best_match(query) == (best, 0)
            assert index.is_novel(query) is novel
            assert index.near_duplicate(query) == (None if novel else (best, 0))


def test_index_basics() -> None:
    index = RougeIndex()
    assert index.best_match("anything") == (0.0, -1)
    assert index.is_novel("anything") and index.near_duplicate("anything") is None
    assert index.most_similar("anything") == []
    assert [index.add(t) for t in ["one two", "日本", "three four"]] == [0, 1, 2]
    assert len(index) == 3 and index.text(1) == "日本"
    assert index.best_match("five six") == (0.0, -1)
    assert index.best_match("日本") == (0.0, -1)
    assert index.most_similar("two three", k=1) == [(0, 0.5)]
    with pytest.raises(ValueError, match="between 0 and 1"):
        RougeIndex(1.5)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(pool_text_st, max_size=25),
    st.lists(pool_text_st, min_size=1, max_size=6),
    threshold_st,
)
def test_index_matches_brute_force(pool: list[str], queries: list[str], t: float) -> None:
    runs = [(2, -1, c) for c in CONFIGS] + [(10**9, -1, {}), (256, 1024, {})]
    for flush_size, scan, config in runs:
        patch = {"_FLUSH": flush_size, "_SCAN": scan}
        with patched(similarity, **patch), patched(_prefix, **config):
            index = RougeIndex(t)
            for text in pool:
                index.add(text)
            for q in queries:
                best = brute_best(pool, q)
                assert index.best_match(q) == best
                assert index.is_novel(q) == (best[0] <= t)
                assert index.near_duplicate(q) == (None if best[0] <= t else best)
                for k in (1, 3, 10):
                    assert index.most_similar(q, k) == brute_top(pool, q, k)
            screen, grown = index.screen(queries), list(pool)  # as stage 1 decides a reply
            for j, q in enumerate(queries):
                best = brute_best(grown, q)
                assert screen.near_duplicate(j) == (None if best[0] <= t else best)
                for k in (1, 3, 10):
                    assert screen.most_similar(j, k) == brute_top(grown, q, k)
                if best[0] <= t:
                    index.add(q)
                    grown.append(q)
                    assert index.is_novel(q) == (brute_best(grown, q)[0] <= t)  # may flush
                    assert index.most_similar(q, 3) == brute_top(grown, q, 3)  # a new screen


@settings(max_examples=150, deadline=None)
@given(
    st.lists(pool_text_st, max_size=30),
    st.lists(pool_text_st, max_size=5),
    threshold_st,
    st.sampled_from([1, 2, 5, 4096]),
)
def test_dedup_matches_brute_force(
    texts: list[str], against: list[str], t: float, block: int
) -> None:
    expected = brute_dedup(texts, t, against)
    with patched(similarity, _BLOCK=block, _HEAD=max(block, 3)):
        for config in CONFIGS:
            with patched(_prefix, **config):
                assert list(dedup(texts, t, against)) == expected
    exact = list(dedup(texts, t, against, exact_scores=True))
    assert exact == brute_dedup(texts, t, against, exact=True)


def brute_top(pool: list[str], text: str, k: int) -> list[tuple[int, float]]:
    """Top-k (index, reference F) with F > 0, by F descending then index."""
    scores = [(-reference(p, text), i) for i, p in enumerate(pool)]
    return [(i, -s) for s, i in sorted(scores) if s < 0][:k]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.lists(st.sampled_from([0, 1, 2, 3, 4, 5, 2**31 - 1]), max_size=10), max_size=30),
    st.integers(0, 30),
    st.lists(st.lists(st.integers(0, 6), min_size=1, max_size=10), min_size=1, max_size=3),
    st.sampled_from([0, 1, 3, 64, 100]),
)
def test_overlaps_count_shared_elements(
    texts: list[list[int]], built: int, queries: list[list[int]], common: int
) -> None:
    with patched(_prefix, _COMMON=common):
        overlaps = _prefix.Overlaps()
        lens = np.array([len(t) for t in texts[:built]], dtype=np.int64)
        tokens = np.array([x for t in texts[:built] for x in t], dtype=np.int64)
        overlaps.rebuild(tokens, lens)
        for t in texts[built:]:
            overlaps.add(_prefix.element_codes(t), len(t))
        for q in queries:
            shared = [sum((Counter(t) & Counter(q)).values()) for t in texts]
            lengths = [len(t) + len(q) for t in texts]
            ratio = np.array(shared, dtype=np.float32) / np.array(lengths, dtype=np.float32)
            for size in {len(texts), len(texts) // 2}:  # a screen's pool, texts added since
                row = overlaps.ratios(_prefix.element_codes(q), size)
                assert row.tolist() == ratio[:size].tolist()


# Small first levels, samples and common-element sets push tiny pools through every branch of
# the bounded top-k search: several levels, growing parts, all-postings and all-bits overlaps.
TOP_CONFIGS = [
    ({}, {}),
    ({"_FIRST": 1, "_SAMPLE": 2}, {"_COMMON": 0}),
    ({"_FIRST": 1, "_SAMPLE": 1}, {"_COMMON": 3}),
    ({"_FIRST": 2}, {"_COMMON": 100}),
]
TOP_KS = [1, 2, 3, 10, 100]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(pool_text_st, max_size=30),
    st.lists(pool_text_st, min_size=1, max_size=6),
    st.integers(0, 30),
)
def test_top_k_matches_reference(pool: list[str], candidates: list[str], built: int) -> None:
    """The stage 1 pattern: query each candidate, then add it (texts repeat, scores tie)."""
    texts = pool + candidates
    expected = [
        {k: brute_top(texts[:i], texts[i], k) for k in TOP_KS} for i in range(len(pool), len(texts))
    ]
    for config, prefix_config in TOP_CONFIGS:
        with patched(similarity, _SCAN=-1, **config), patched(_prefix, **prefix_config):
            index = RougeIndex()
            index.extend(pool[:built])
            index.most_similar("a")  # builds the overlaps on part of the pool
            for text in pool[built:]:
                index.add(text)
            for text, want in zip(candidates, expected, strict=True):
                assert {k: index.most_similar(text, k) for k in TOP_KS} == want
                assert index.best_match(text) == (
                    (want[1][0][1], want[1][0][0]) if want[1] else (0.0, -1)
                )
                index.add(text)


def test_top_k_ties_and_short_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(similarity, "_SCAN", -1)
    monkeypatch.setattr(similarity, "_FIRST", 1)
    index = RougeIndex()
    index.extend(["c b a", "x y", "a b c"] * 30 + ["a b c d"])
    exact = [(i, 1.0) for i in range(2, 90, 3)]
    assert index.most_similar("a b c", 5) == exact[:5]
    assert index.most_similar("a b c", 40) == exact + [(90, 0.8571428571428571)] + [
        (i, 1 / 3) for i in range(0, 27, 3)
    ]
    assert index.most_similar("b", 3) == [(0, 0.5), (2, 0.5), (3, 0.5)]
    assert index.most_similar("y q", 100) == [(i, 0.5) for i in range(1, 90, 3)]
    assert index.most_similar("q", 10) == []
    assert index.most_similar("a b c", 0) == []
    assert index.best_match("c d") == (2 / 3, 90)
    # Text 0 ties with the 20 others (F 0.5) though its bound is the lowest, which F attains.
    index = RougeIndex()
    index.extend(["a c"] + ["b a"] * 20)
    assert index.most_similar("a b", 1) == [(0, 0.5)]
    assert index.best_match("a b") == (0.5, 0)


def test_dedup_boundary() -> None:
    texts = [
        "a b c d e f g h i j",
        "a b c d e f g x y z",
        "a b c d e f g",
        "a b c d e f g h2 i2 j2 k2 l2 m2",
    ]
    got = list(dedup(texts))
    assert [r.kept for r in got] == [True, True, False, True]
    assert got[2] == DedupResult(False, 0.8235294117647058, 0, False)
    got = list(dedup(texts[3:], against=texts[2:3]))
    assert got == [DedupResult(False, 0.7000000000000001, 0, True)]


def corpus(n: int, seed: int) -> list[str]:
    """Self-Instruct-like instructions: Zipfian words, openers, a share of paraphrases."""
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(800)] + ["the", "a", "of", "write", "list", "given"]
    weights = [1 / (r + 1) for r in range(len(vocab))]
    weights = weights[-6:] + weights[:-6]
    openers = ["Write a", "Generate a list of", "Given a", "Explain why", "Classify the"]
    out: list[str] = []
    for _ in range(n):
        if out and rng.random() < 0.2:
            words = rng.choice(out).split()
            for _ in range(rng.choice([0, 1, 1, 2, 3, 5])):
                j = rng.randrange(len(words))
                op = rng.randrange(3)
                if op == 0:
                    words.insert(j, rng.choices(vocab, weights)[0])
                elif op == 1 and len(words) > 2:
                    del words[j]
                else:
                    words[j] = rng.choices(vocab, weights)[0]
            out.append(" ".join(words))
            continue
        size = max(1, min(150, int(rng.lognormvariate(2.6, 0.6))))
        head = rng.choice(openers).split() if rng.random() < 0.4 else []
        out.append(
            " ".join(head + rng.choices(vocab, weights, k=size)) + rng.choice([".", "?", ""])
        )
    return out


@pytest.mark.parametrize(("n", "t", "seed"), [(1500, 0.7, 0), (1000, 0.5, 1), (800, 0.85, 2)])
def test_dedup_realistic_corpus(n: int, t: float, seed: int) -> None:
    texts = corpus(n, seed)
    against = corpus(60, seed + 100)
    with patched(similarity, _BLOCK=256):
        assert list(dedup(texts, t, against)) == brute_dedup(texts, t, against, rouge_l)


def test_top_k_realistic_corpus() -> None:
    """Stage 1 on a realistic pool: top-k agrees with the full scan as the pool grows."""
    texts = corpus(3000, 7)
    index = RougeIndex()
    index.extend(texts[:1500])
    for i, text in enumerate(texts[1500:]):
        with patched(similarity, _SCAN=10**9):
            expected = {k: index.most_similar(text, k) for k in (1, 10, 50)}
        assert {k: index.most_similar(text, k) for k in (1, 10, 50)} == expected
        best = expected[1][0] if expected[1] else (-1, 0.0)
        assert index.best_match(text) == (best[1], best[0])
        if i % 3 == 0 or index.is_novel(text):
            index.add(text)


def test_index_realistic_corpus() -> None:
    texts = corpus(2500, 3)
    index = RougeIndex()
    queries = corpus(40, 4) + [texts[i] + " extra" for i in range(0, 2500, 100)]
    for text in texts:
        index.add(text)
    for q in queries:
        scores = [rouge_l(p, q) for p in texts]
        best = max(scores)
        assert index.best_match(q) == ((best, scores.index(best)) if best > 0 else (0.0, -1))
        assert index.is_novel(q) == (best <= 0.7)
        top = sorted((-s, i) for i, s in enumerate(scores) if s > 0)[:10]
        assert index.most_similar(q) == [(i, -s) for s, i in top]


def long_texts() -> Iterator[str]:
    """Very long near-duplicates: beyond the alpha table and the packed length/position limits."""
    rng = random.Random(5)
    for size in (300, 300, 17000):
        base = [f"t{rng.randrange(900)}" for _ in range(size)]
        yield " ".join(base)
        for _ in range(2):
            words = list(base)
            for _ in range(int(size * rng.choice([0.1, 0.2, 0.4]))):
                words[rng.randrange(size)] = f"t{rng.randrange(900)}"
            yield " ".join(words)


def test_long_texts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(similarity, "_SCAN", -1)
    texts = list(long_texts())
    for t in (0.7, 0.85):
        assert list(dedup(texts, t)) == brute_dedup(texts, t, [], rouge_l)
        index = RougeIndex(t)
        index.extend(texts[:4])
        for q in texts[4:]:
            scores = [rouge_l(p, q) for p in texts[:4]]
            assert index.is_novel(q) == (max(scores) <= t)


def test_token_ids_beyond_unicode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(similarity, "_CODE_POINTS", 5)
    monkeypatch.setattr(similarity, "_SCAN", -1)
    texts = corpus(300, 6)
    assert list(dedup(texts)) == brute_dedup(texts, 0.7, [], rouge_l)
    index = RougeIndex()
    index.extend(texts[:150])
    for q in texts[150:200]:
        scores = [rouge_l(p, q) for p in texts[:150]]
        best = max(scores)
        assert index.best_match(q) == ((best, scores.index(best)) if best > 0 else (0.0, -1))
