"""ROUGE-L F-measure exactly as rouge_score computes it, and a fast near-duplicate index.

Scores equal ``RougeScorer(["rougeL"]).score(a, b)["rougeL"].fmeasure``: same tokens, same LCS,
same floating-point expression. Two exact searches, both deciding with that expression:

- above a threshold (is_novel, dedup): a prefix filter (see ``_prefix``) finds every pool text
  that can score above it; built when first needed;
- the best scores overall (most_similar, best_match, and stage 1's screen, whose best match
  decides novelty): every pool text's F is bounded by the elements it shares with the query,
  and exact LCS (rapidfuzz) is computed only while a bound can still beat the k-th best exact
  score.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import NamedTuple, TypeAlias

import numpy as np
import numpy.typing as npt
from rapidfuzz import process
from rapidfuzz.distance import LCSseq

from selfinstruct.method._prefix import (
    Floats,
    Ints,
    Overlaps,
    PrefixIndex,
    element_codes,
    f_measure,
)

__all__ = ["DedupResult", "RougeIndex", "dedup", "mean_pairwise", "rouge_l", "tokenize"]

_TOKEN = re.compile(r"[a-z0-9]+")
_CODE_POINTS = 0x110000  # token ids below this travel as one character each
_FLUSH = 256  # texts added one by one are scanned directly until this many wait
_SETTLED = 1 << 15  # the element order is re-derived as the pool doubles, up to this size
_HEAD = 1 << 16  # dedup derives the element order from this many leading texts
_BLOCK = 4096  # dedup decides this many texts per vectorized step
_SCAN = 1024  # pools up to this size are simply scanned: cheaper than the prefix filter
_FIRST = 12  # top-k queries first score about _FIRST * (k + 2) texts with the best bounds
_SAMPLE = 2048  # ratios sampled to find where the first level starts
_ROWS = 256  # mean_pairwise scores this many texts against all at once
_MEAN_SAMPLE = 1024  # stage 1's mean similarity is exact up to this pool size, sampled above
_SLACK = 1 + 1e-6  # covers float32 rounding: 2 * ratio * _SLACK bounds the exact F from above

Seq: TypeAlias = str | list[int]
Ratios: TypeAlias = npt.NDArray[np.float32]


def tokenize(text: str) -> list[str]:
    """rouge_score's tokens: full-Unicode lowercase, then runs of [a-z0-9]."""
    return _TOKEN.findall(text.lower())


def _f(lcs: int, m: int, n: int) -> float:
    """F from an LCS and two lengths, in rouge_score's floating-point order."""
    if lcs == 0:
        return 0.0
    precision, recall = lcs / n, lcs / m
    return 2 * precision * recall / (precision + recall)


def rouge_l(a: str, b: str) -> float:
    """RougeScorer(["rougeL"]).score(target=a, prediction=b) F-measure (symmetric)."""
    ta, tb = tokenize(a), tokenize(b)
    if not ta or not tb:
        return 0.0
    ids: dict[str, int] = {}
    sa = [ids.setdefault(w, len(ids)) for w in ta]
    sb = [ids.setdefault(w, len(ids)) for w in tb]
    return _f(int(LCSseq.similarity(sa, sb)), len(ta), len(tb))


def mean_pairwise(texts: Sequence[str]) -> float | None:
    """The mean ROUGE-L F over all pairs of `texts` (each pair once), exact; None under 2 texts."""
    if len(texts) < 2:
        return None
    vocab = _Vocab()
    seqs = [vocab.encode(t) for t in texts]
    lens = np.array([len(s) for s in seqs], dtype=np.int64)
    parts: list[float] = []
    n = len(seqs)
    for start in range(0, n, _ROWS):  # a block of rows against the texts from its first on
        rows, cols = seqs[start : start + _ROWS], seqs[start:]
        lcs = process.cdist(rows, cols, scorer=LCSseq.similarity, dtype=np.int64)
        m = np.broadcast_to(lens[start : start + _ROWS, None], lcs.shape)
        scores = f_measure(lcs, m, np.broadcast_to(lens[start:], lcs.shape))
        above = np.arange(len(cols))[None, :] > np.arange(len(rows))[:, None]
        parts.extend(scores[above].tolist())
    return math.fsum(parts) / (n * (n - 1) // 2)  # correctly rounded: the same in any order


def _lcs(left: Sequence[Seq], right: Sequence[Seq]) -> Ints:
    """LCS lengths of corresponding sequences (rapidfuzz compares code points with ints)."""
    if not left:
        return np.empty(0, dtype=np.int64)
    return process.cpdist(left, right, scorer=LCSseq.similarity, dtype=np.int64)


def _tokens(seqs: Sequence[Seq]) -> Ints:
    """Token ids of all sequences, concatenated."""
    strs = [s for s in seqs if isinstance(s, str)]
    if len(strs) == len(seqs):
        raw = "".join(strs).encode("utf-32-le", "surrogatepass")
        return np.frombuffer(raw, dtype=np.uint32).astype(np.int64)
    parts = [np.array([ord(c) for c in s] if isinstance(s, str) else s, np.int64) for s in seqs]
    return np.concatenate([np.empty(0, np.int64), *parts])


class _Vocab:
    """Interns tokens as ids, spelled as one character each while ids fit in Unicode."""

    def __init__(self) -> None:
        self._chars: dict[str, str] = {}
        self._big: dict[str, int] = {}

    def encode(self, text: str, register: bool = True) -> Seq:
        """The text's token ids; unregistered new tokens get ids that match nothing."""
        words = tokenize(text)
        try:
            return "".join([self._chars[w] for w in words])
        except KeyError:
            return self._encode_slow(words, register)

    def _encode_slow(self, words: list[str], register: bool) -> Seq:
        """Encode with new tokens (registered, or numbered past the vocabulary)."""
        extra: dict[str, int] = {}
        ids = [self._id(w, register, extra) for w in words]
        if max(ids, default=0) < _CODE_POINTS:
            return "".join(map(chr, ids))
        return ids

    def _id(self, word: str, register: bool, extra: dict[str, int]) -> int:
        """Id of one token, registering or numbering it when new."""
        if word in self._chars:
            return ord(self._chars[word])
        if word in self._big:
            return self._big[word]
        size = len(self._chars) + len(self._big)
        if not register:
            return extra.setdefault(word, size + len(extra))
        if size < _CODE_POINTS:
            self._chars[word] = chr(size)
        else:
            self._big[word] = size
        return size


class DedupResult(NamedTuple):
    """One text's verdict and its best match among earlier kept (or `against`) texts.

    `score`/`match` are exact for dropped texts; for kept texts they are 0.0/-1 unless
    `dedup(..., exact_scores=True)`. `match` indexes `against` when `in_against`, else `texts`.
    """

    kept: bool
    score: float
    match: int
    in_against: bool


class Screen:
    """Texts bounded together against a RougeIndex (see RougeIndex.screen)."""

    def __init__(
        self, index: RougeIndex, texts: Sequence[str], seqs: list[Seq], bounded: bool
    ) -> None:
        self._index, self._texts, self._seqs, self._bounded = index, texts, seqs, bounded
        self._size = len(index)
        self._row: tuple[int, int, Ratios] | None = None  # (text, overlaps.calls, its ratios)
        self._fresh: tuple[tuple[int, int], Ints, Floats] | None = None  # see _since

    def most_similar(self, j: int, k: int = 10) -> list[tuple[int, float]]:
        """RougeIndex.most_similar of the j-th text, against the pool as it is now."""
        index, seq = self._index, self._seqs[j]
        ids, scores = np.empty(0, dtype=np.int64), np.empty(0)
        if k > 0 and seq and self._size:
            if self._bounded:
                ratio = self._ratios(j)
                ids, scores = _bounded(ratio, k, lambda part: index._score_ids(seq, part))
            else:  # a small pool: scanned
                ids = np.arange(self._size)
                scores = index._score_ids(seq, ids)
        since, more = self._since(j)
        return _best(np.concatenate((ids, since)), np.concatenate((scores, more)), k)

    def near_duplicate(self, j: int) -> tuple[float, int] | None:
        """RougeIndex.near_duplicate of the j-th text, against the pool as it is now. Only the
        texts whose bound exceeds the threshold are scored: far fewer than a top-k needs."""
        index, seq = self._index, self._seqs[j]
        ids = np.empty(0, dtype=np.int64)
        if seq and self._size:
            if self._bounded:  # F <= 2 * ratio * _SLACK; the float32 cut is nudged down
                cut = np.nextafter(np.float32(index.threshold / (2 * _SLACK)), np.float32(0))
                ids = np.flatnonzero(self._ratios(j) >= cut)
            else:
                ids = np.arange(self._size)
        scores = index._score_ids(seq, ids)
        since, more = self._since(j)
        ids, scores = np.concatenate((ids, since)), np.concatenate((scores, more))
        if not len(ids):
            return None
        best = int(np.argmax(scores))  # ids ascend: the lowest index wins a tie
        return (float(scores[best]), int(ids[best])) if scores[best] > index.threshold else None

    def mean_similarity(self, j: int) -> float:
        """Mean F of the j-th text against the pool as it is now: exact up to _MEAN_SAMPLE texts,
        else over _MEAN_SAMPLE texts spread evenly across the pool (bench: within 0.01 at 50K)."""
        index = self._index
        size = len(index)
        seq = index._vocab.encode(self._texts[j], register=False)
        if not size or not seq:
            return 0.0
        if size <= _MEAN_SAMPLE:
            ids = np.arange(size, dtype=np.int64)
        else:
            ids = np.unique(np.linspace(0, size - 1, _MEAN_SAMPLE).astype(np.int64))
        return float(index._score_ids(seq, ids).mean())

    def _since(self, j: int) -> tuple[Ints, Floats]:
        """The texts added after screening and the j-th text's scores against them (scored
        directly, and kept until the pool grows again)."""
        if self._fresh is None or self._fresh[0] != (j, len(self._index)):
            index = self._index
            since = np.arange(self._size, len(index), dtype=np.int64)
            # Encoded anew: words unknown at screening may have joined the vocabulary since.
            fresh = index._vocab.encode(self._texts[j], register=False)
            scores = index._score_ids(fresh, since) if fresh else np.zeros(len(since))
            self._fresh = ((j, len(index)), since, scores)
        return self._fresh[1], self._fresh[2]

    def _ratios(self, j: int) -> Ratios:
        """The j-th text's overlap ratios with the pool as screened (computed again unless they
        are the overlaps' last row)."""
        overlaps = self._index._overlaps
        if self._row is None or self._row[:2] != (j, overlaps.calls):
            ratio = overlaps.ratios(_codes(self._seqs[j]), self._size)
            self._row = (j, overlaps.calls, ratio)
        return self._row[2]


class RougeIndex:
    """An append-only pool of texts for near-duplicate checks."""

    def __init__(self, threshold: float = 0.7) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
        self.threshold = threshold
        self._texts: list[str] = []
        self._seqs: list[Seq] = []
        self._lens_buf: Ints = np.zeros(1024, dtype=np.int64)
        self._vocab = _Vocab()
        self._prefix = PrefixIndex(threshold)
        self._pending: list[int] = []
        self._basis = 0
        self._overlaps = Overlaps()

    def __len__(self) -> int:
        return len(self._texts)

    def text(self, i: int) -> str:
        """The i-th added text."""
        return self._texts[i]

    def add(self, text: str) -> int:
        """Add a text (no check) and return its index."""
        i = self._append(text, self._vocab.encode(text))
        self._pending.append(i)
        return i

    def extend(self, texts: Iterable[str]) -> None:
        """Add many texts at once (no checks)."""
        for text in texts:
            self.add(text)

    def is_novel(self, text: str) -> bool:
        """True when no pool text scores above the threshold."""
        seq = self._vocab.encode(text, register=False)
        if len(self) <= _SCAN:
            return not (self._scores(seq) > self.threshold).any()
        return not self._above(seq)

    def near_duplicate(self, text: str) -> tuple[float, int] | None:
        """None when the text is novel, else `best_match(text)`."""
        return self.screen([text]).near_duplicate(0)

    def screen(self, texts: Sequence[str]) -> Screen:
        """Bound several texts against the pool in one pass (the overlaps of each with every
        pool text), then query them one by one with the Screen, adding texts in between as
        usual: as exact as `most_similar`/`near_duplicate` on each in turn."""
        seqs = [self._vocab.encode(text, register=False) for text in texts]
        if len(self) <= max(_SCAN, 0):
            return Screen(self, texts, seqs, bounded=False)
        overlaps = self._overlaps
        if len(self) >= 2 * overlaps.built:  # rebuilt as the pool doubles: amortized O(1)
            overlaps.rebuild(_tokens(self._seqs), self._lens())
        for i in range(overlaps.size, len(self)):
            overlaps.add(_codes(self._seqs[i]), len(self._seqs[i]))
        return Screen(self, texts, seqs, bounded=True)

    def best_match(self, text: str) -> tuple[float, int]:
        """Exact max F over the pool and the first index reaching it; (0.0, -1) if none > 0."""
        best = self.most_similar(text, 1)
        return (best[0][1], best[0][0]) if best else (0.0, -1)

    def most_similar(self, text: str, k: int = 10) -> list[tuple[int, float]]:
        """Exact top-k (index, F) by F descending, ties by lower index; F == 0 omitted."""
        return self.screen([text]).most_similar(0, k)

    def _append(self, text: str, seq: Seq) -> int:
        """Store one text and its token sequence; return its index."""
        i = len(self._texts)
        if i == len(self._lens_buf):
            self._lens_buf = np.concatenate((self._lens_buf, np.zeros(i, dtype=np.int64)))
        self._lens_buf[i] = len(seq)
        self._texts.append(text)
        self._seqs.append(seq)
        return i

    def _lens(self) -> Ints:
        """Token counts of all pool texts."""
        return self._lens_buf[: len(self._texts)]

    def _flush(self) -> None:
        """Move waiting texts into the prefix index (re-deriving the order while it is young)."""
        if not self._pending:
            return
        if self._basis < _SETTLED and len(self) >= 2 * self._basis:
            self._reorder([])
            return
        ids = np.array(self._pending, dtype=np.int64)
        self._index(ids)

    def _index(self, ids: Ints) -> None:
        """Add these pool texts' keys to the prefix index, a block at a time."""
        self._pending = []
        for start in range(0, len(ids), _HEAD):
            part = ids[start : start + _HEAD]
            seqs = [self._seqs[i] for i in part]
            keys = self._prefix.keys(_tokens(seqs), self._lens()[part], register=True)
            self._prefix.add(self._prefix.run(keys).subset(part))

    def _reorder(self, sample: Sequence[Seq]) -> None:
        """Rank elements by frequency in the pool plus a sample, and rebuild the prefix index."""
        seqs = [*self._seqs, *sample]
        lens = np.array([len(s) for s in seqs], dtype=np.int64)
        self._prefix.order.reset(_tokens(seqs), lens)
        self._prefix.runs = []
        self._basis = len(seqs)
        self._index(np.arange(len(self), dtype=np.int64))

    def _above(self, seq: Seq) -> bool:
        """Whether some pool text scores above the threshold (probing run by run)."""
        if not seq:
            return False
        if len(self._pending) >= _FLUSH:  # the prefix index is built when first needed
            self._flush()
        if self._pending and self._check(seq, np.array(self._pending, dtype=np.int64)):
            return True
        return any(self._check(seq, ids) for ids in self._candidates(seq))

    def _candidates(self, seq: Seq) -> Iterator[Ints]:
        """Per run of the prefix index, the pool texts that may score above the threshold."""
        lens = np.array([len(seq)], dtype=np.int64)
        keys = self._prefix.keys(_tokens([seq]), lens, register=False)
        for run in self._prefix.runs:
            yield self._prefix.probe(keys, run, self._lens()) & 0xFFFFFFFF

    def _check(self, seq: Seq, ids: Ints) -> bool:
        """Whether any of the given pool texts scores above the threshold."""
        return bool((self._score_ids(seq, ids) > self.threshold).any())

    def _score_ids(self, seq: Seq, ids: Ints) -> Floats:
        """Exact F of seq against these pool texts."""
        if not len(ids):
            return np.empty(0)
        others = [self._seqs[i] for i in ids.tolist()]
        lcs = process.cdist([seq], others, scorer=LCSseq.similarity, dtype=np.int64)[0]
        return f_measure(lcs, np.full(len(ids), len(seq)), self._lens()[ids])

    def _scores(self, seq: Seq) -> Floats:
        """Exact F of seq against every pool text."""
        if not seq or not self._seqs:
            return np.zeros(len(self._seqs))
        lcs = process.cdist([seq], self._seqs, scorer=LCSseq.similarity, dtype=np.int64)[0]
        return f_measure(lcs, np.full(len(lcs), len(seq)), self._lens())


def _codes(seq: Seq) -> list[int]:
    """Element codes of one token sequence."""
    return element_codes(map(ord, seq) if isinstance(seq, str) else seq)


def _bounded(
    ratio: npt.NDArray[np.float32], k: int, score: Callable[[Ints], Floats]
) -> tuple[Ints, Floats]:
    """Score texts in decreasing bound order until the k-th best exact score beats every bound.

    `2 * ratio * _SLACK` bounds each text's F from above. The first level holds about `first`
    best bounds; the next goes down to the bound that the k-th best score so far needs. Texts
    tying the k-th best are scored too (the lower index wins a tie); texts sharing no element
    (F == 0) never are.
    """
    first = _FIRST * (k + 2)
    tiny = np.float32(np.finfo(np.float32).smallest_subnormal)  # ratio >= tiny: shares a token
    low, high = np.float32(max(_near_top(ratio, first), tiny)), np.float32(np.inf)
    ids, scores = [np.empty(0, dtype=np.int64)], [np.empty(0)]
    kth = 0.0
    while True:
        level = np.flatnonzero(ratio >= low)
        level = level[ratio[level] < high]
        level = level[np.argsort(-ratio[level], kind="stable")]
        bounds = -2 * _SLACK * ratio[level].astype(np.float64)  # ascending
        start, size = 0, first
        while start < (stop := int(np.searchsorted(bounds, -kth, "right"))):
            part = level[start : min(start + size, stop)]
            ids.append(part)
            scores.append(score(part))
            kth = _kth(np.concatenate(scores), k)
            start, size = start + len(part), 2 * size
        need = np.float32(kth / (2 * _SLACK)) if kth > 0 else tiny
        if start < len(level) or need >= low:  # every text left has a bound under kth
            return np.concatenate(ids), np.concatenate(scores)
        high, low = low, need


def _near_top(ratio: npt.NDArray[np.float32], count: int) -> float:
    """A ratio that about `count` texts reach, estimated from a strided sample."""
    sample = ratio[:: max(len(ratio) // _SAMPLE, 1)]
    at = max(len(sample) - max(count * len(sample) // len(ratio), 1), 0)
    return float(np.partition(sample, at)[at])


def _kth(scores: Floats, k: int) -> float:
    """The k-th largest score, 0.0 when there are fewer than k."""
    return (
        float(np.partition(scores, len(scores) - k)[len(scores) - k]) if len(scores) >= k else 0.0
    )


def _best(ids: Ints, scores: Floats, k: int) -> list[tuple[int, float]]:
    """The k best (index, score) with score > 0, by score descending then index."""
    hit = scores > 0
    ids, scores = ids[hit], scores[hit]
    top = np.lexsort((ids, -scores))[:k]
    return [(int(ids[i]), float(scores[i])) for i in top]


def dedup(
    texts: Iterable[str],
    threshold: float = 0.7,
    against: Iterable[str] = (),
    *,
    exact_scores: bool = False,
) -> Iterator[DedupResult]:
    """Keep each text unless it scores above threshold against `against` or an earlier kept text.

    Results stream in input order after a read-ahead of up to 65,536 texts (the token frequency
    sample). `exact_scores=True` also finds the best score of kept texts, by a full scan each.
    """
    index = RougeIndex(threshold)
    prior = list(against)
    if exact_scores:
        yield from _dedup_exact(index, prior, texts)
        return
    stream = iter(texts)
    head = list(islice(stream, _HEAD))
    head_seqs = [index._vocab.encode(t) for t in head]
    index._reorder([index._vocab.encode(t) for t in prior] + head_seqs)
    index.extend(prior)
    source = list(range(len(prior)))
    done = 0
    for block, seqs in _blocks(head, head_seqs, stream, index):
        for kept, score, match in _decide(index, block, seqs, source, done):
            yield _result(kept, score, match, source, len(prior))
        done += len(block)


def _blocks(
    head: list[str], head_seqs: list[Seq], stream: Iterator[str], index: RougeIndex
) -> Iterator[tuple[list[str], list[Seq]]]:
    """The head, then the rest of the stream, in blocks of _BLOCK texts with their tokens."""
    for start in range(0, len(head), _BLOCK):
        yield head[start : start + _BLOCK], head_seqs[start : start + _BLOCK]
    while block := list(islice(stream, _BLOCK)):
        yield block, [index._vocab.encode(t) for t in block]


def _result(kept: bool, score: float, match: int, source: list[int], n_prior: int) -> DedupResult:
    """Translate a pool index into a position in `against` or `texts`."""
    if match < 0:
        return DedupResult(kept, score, -1, False)
    return DedupResult(kept, score, source[match], match < n_prior)


def _dedup_exact(
    index: RougeIndex, prior: list[str], texts: Iterable[str]
) -> Iterator[DedupResult]:
    """Sequential dedup that also reports the exact best score of kept texts."""
    index.extend(prior)
    source = list(range(len(prior)))
    for pos, text in enumerate(texts):
        score, match = index.best_match(text)
        kept = score <= index.threshold
        yield _result(kept, score, match, source, len(prior))
        if kept:
            index.add(text)
            source.append(pos)


def _decide(
    index: RougeIndex, block: list[str], seqs: list[Seq], source: list[int], done: int
) -> list[tuple[bool, float, int]]:
    """Decide a block in order against the pool and its own earlier kept texts; add the kept."""
    index._flush()
    lens = np.array([len(s) for s in seqs], dtype=np.int64)
    prefix = index._prefix
    keys = prefix.keys(_tokens(seqs), lens, register=True)
    outer = [prefix.probe(keys, run, index._lens()) for run in prefix.runs]
    run = prefix.run(keys)
    own = prefix.probe(keys, run, lens, True)
    partners = _verified(index, seqs, lens, np.concatenate([own, *outer]), len(own))
    pool_ids = np.full(len(block), -1, dtype=np.int64)
    out = []
    for x in range(len(block)):
        best, match = 0.0, -1
        for y, score, inner in partners.get(x, ()):
            pid = int(pool_ids[y]) if inner else y
            if pid >= 0 and (score > best or (score == best and pid < match)):
                best, match = score, pid
        if match < 0:
            pool_ids[x] = index._append(block[x], seqs[x])
            source.append(done + x)
        out.append((match < 0, best, match))
    prefix.add(run.subset(pool_ids))
    return out


def _verified(
    index: RougeIndex, seqs: list[Seq], lens: Ints, pairs: Ints, n_own: int
) -> dict[int, list[tuple[int, float, bool]]]:
    """Exact scores of candidate pairs, above-threshold ones grouped by block text."""
    x, y = pairs >> 32, pairs & 0xFFFFFFFF
    inner = np.arange(len(pairs)) < n_own
    other = [
        seqs[j] if own else index._seqs[j]
        for j, own in zip(y.tolist(), inner.tolist(), strict=True)
    ]
    lcs = _lcs([seqs[i] for i in x.tolist()], other)
    n = np.concatenate((lens[y[:n_own]], index._lens()[y[n_own:]]))
    scores = f_measure(lcs, lens[x], n)
    partners: dict[int, list[tuple[int, float, bool]]] = {}
    for i in np.flatnonzero(scores > index.threshold).tolist():
        partners.setdefault(int(x[i]), []).append((int(y[i]), float(scores[i]), bool(inner[i])))
    return partners
