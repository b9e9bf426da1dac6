"""Prefix-filter candidate search for ROUGE-L above a threshold (numpy internals of similarity).

Every text is a multiset of token *elements* (the k-th occurrence of a token is its own element),
so overlap counts the multiset intersection, an upper bound of the LCS. Elements are sorted by a
global order (rarest first). If a pair needs an LCS of at least ``alpha`` to exceed the
threshold, its first l shared elements sit within the first ``len - alpha + l`` elements of both
texts (the l-prefix principle). We index every pair of elements of a text's prefix, with the
text's length and the second element's position packed after the pair's hash in a sortable
integer, so one range lookup returns only postings whose length can still reach the threshold;
positions are then checked exactly. Where the first three shared elements must fall inside both
indexed prefixes, a candidate needs three matching pair keys. Texts longer than _LONG are
indexed by single elements instead (their pairs would grow quadratically), and so are texts
short enough for one shared token to exceed the threshold. The caller verifies survivors with
the exact LCS and F expression; every filter here only ever errs towards keeping a candidate.

For top-k queries, ``Overlaps`` counts the elements a query shares with every text (the same
LCS upper bound), so the caller can score candidates in decreasing order of that bound.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Words = npt.NDArray[np.uint64]

_BASE = 1 << 30  # ranks of ordered elements start here; unseen elements take ranks below it
_SINGLE = (1 << 31) - 1  # second half of the key of a single-element posting
_MULT = np.uint64(0x9E3779B97F4A7C15)
_NMAX = (1 << 14) - 1  # lengths and positions are clipped (conservatively) to fit the packing
_QMAX = (1 << 8) - 1
_CHUNK = 1 << 22  # postings expanded at once, bounds temporary memory
_TABLE = 256  # alpha is tabulated for lengths below this
_LONG = 48  # longer texts are indexed by single elements: pairs would grow quadratically
_COMMON = 64  # Overlaps keeps this many most common elements as bits, the rest as postings


def f_measure(lcs: Ints, m: Ints, n: Ints) -> Floats:
    """ROUGE-L F exactly as rouge_score computes it, elementwise (0 where lcs is 0)."""
    safe = np.maximum(lcs, 1)  # where lcs > 0, m and n are >= lcs > 0 and nothing changes
    p = safe / np.maximum(n, safe)
    r = safe / np.maximum(m, safe)
    return np.where(lcs > 0, 2 * p * r / (p + r), 0.0)


def alpha(m: Ints, n: Ints, t: float) -> Ints:
    """Smallest LCS whose F exceeds t for lengths (m, n); above min(m, n) when none does."""
    guess = np.floor(t * (m + n) / 2).astype(np.int64) + 1
    best = guess + 2
    for step in (1, 0, -1, -2):
        cand = np.maximum(guess + step, 1)
        best = np.where(f_measure(cand, m, n) > t, cand, best)
    return best


def min_alpha(n: Ints, t: float) -> Ints:
    """Smallest alpha(m, n) over partner lengths m (n + 1 when no partner can exceed t)."""
    guess = np.floor(t * n / (2 - t)).astype(np.int64) + 1
    low = n + 1
    for step in (2, 1, 0, -1, -2):
        cand = np.clip(guess + step, 1, np.maximum(n, 1))
        low = np.where(f_measure(cand, cand, n) > t, cand, low)
    return low


def prefix_len(n: Ints, t: float, ell: int) -> Ints:
    """Elements of a length-n text that must be indexed for l-prefix filtering at threshold t."""
    low = min_alpha(n, t)
    return np.where(low <= n, np.clip(n - low + ell, 0, n), 0)


def _ragged(counts: Ints) -> Ints:
    """Concatenation of arange(c) for every c in counts."""
    total = int(counts.sum())
    ends = np.cumsum(counts)
    return np.arange(total, dtype=np.int64) - np.repeat(ends - counts, counts)


def _chunks(counts: Ints) -> list[slice]:
    """Consecutive slices of counts, each summing to about _CHUNK (or one oversized item)."""
    ends = np.cumsum(counts)
    parts, lo = [], 0
    while lo < len(counts):
        done = int(ends[lo - 1]) if lo else 0
        hi = max(int(np.searchsorted(ends, done + _CHUNK, side="right")), lo + 1)
        parts.append(slice(lo, hi))
        lo = hi
    return parts


class Keys(NamedTuple):
    """Prefix keys of a batch of texts: hashed key, owning text, position and l of each."""

    lens: Ints
    hashes: Words
    owner: Ints
    pos: Ints
    ell: Ints


class Run(NamedTuple):
    """Sorted postings: (hash, clipped length, clipped position) packed, and the text id."""

    packed: Words
    ids: npt.NDArray[np.integer[Any]]

    def subset(self, ids: Ints) -> Run:
        """Postings of texts with ids[text] >= 0, renumbered to those ids."""
        keep = ids[self.ids] >= 0
        return Run(self.packed[keep], ids[self.ids[keep]].astype(np.int32))


def _pack(hashes: Words, n: Ints, pos: Ints) -> Words:
    """Sortable posting word: 42-bit key hash, then length, then position."""
    tail = (np.minimum(n, _NMAX) << 8) | np.minimum(pos, _QMAX)
    packed: Words = (hashes << np.uint64(22)) | tail.astype(np.uint64)
    return packed


def merge(a: Run, b: Run) -> Run:
    """Merge two sorted runs without a full sort."""
    at = np.searchsorted(a.packed, b.packed, side="right") + np.arange(len(b.packed))
    rest = np.ones(len(a.packed) + len(b.packed), dtype=bool)
    rest[at] = False
    packed = np.empty(len(rest), dtype=np.uint64)
    packed[rest] = a.packed
    packed[at] = b.packed
    ids = np.empty(len(rest), dtype=a.ids.dtype)
    ids[rest] = a.ids
    ids[at] = b.ids
    return Run(packed, ids)


class Order:
    """A fixed total order of elements: by frequency when ranked, unseen ones first."""

    def __init__(self) -> None:
        self._codes: Ints = np.empty(0, dtype=np.int64)
        self._ranks: Ints = np.empty(0, dtype=np.int64)
        self._front = _BASE

    def reset(self, tokens: Ints, lens: Ints) -> None:
        """Rank elements by how many of these texts hold them, rarest first."""
        codes = _element_codes(tokens, lens)[1]
        uniq, counts = np.unique(codes, return_counts=True)
        self._codes = uniq
        self._ranks = np.empty(len(uniq), dtype=np.int64)
        self._ranks[np.lexsort((uniq, counts))] = _BASE + np.arange(len(uniq))
        self._front = _BASE

    def rank(self, codes: Ints, register: bool) -> Ints:
        """Ranks of element codes; unseen ones get fresh ranks before all others."""
        at = np.minimum(np.searchsorted(self._codes, codes), max(len(self._codes) - 1, 0))
        found = self._codes[at] == codes if len(self._codes) else np.zeros(len(codes), bool)
        ranks = np.where(found, self._ranks[at] if len(self._ranks) else 0, 0)
        if found.all():
            return ranks
        new, inverse = np.unique(codes[~found], return_inverse=True)
        fresh = self._front - 1 - np.arange(len(new))
        ranks[~found] = fresh[inverse]
        if register:
            self._front -= len(new)
            merged = merge(
                Run(self._codes.view(np.uint64), self._ranks), Run(new.view(np.uint64), fresh)
            )
            self._codes, self._ranks = merged.packed.view(np.int64), merged.ids.astype(np.int64)
        return ranks


def _element_codes(tokens: Ints, lens: Ints) -> tuple[Ints, Ints]:
    """Owner and code ((occurrence << 32) | token) of every element, grouped by owner."""
    owner = np.repeat(np.arange(len(lens), dtype=np.int64), lens)
    pairs = np.sort((owner << 32) | tokens)
    first = np.ones(len(pairs), dtype=bool)
    first[1:] = pairs[1:] != pairs[:-1]
    idx = np.arange(len(pairs), dtype=np.int64)
    occurrence = idx - np.maximum.accumulate(np.where(first, idx, 0))
    return pairs >> 32, (occurrence << 32) | (pairs & 0xFFFFFFFF)


class PrefixIndex:
    """Growing set of sorted runs of prefix keys over texts given as token-id arrays."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.order = Order()
        self.runs: list[Run] = []
        sizes = np.arange(_TABLE, dtype=np.int64)
        m, n = np.repeat(sizes, _TABLE), np.tile(sizes, _TABLE)
        need = alpha(m, n, threshold)
        # Pairs whose first three shared elements all sit inside both indexed prefixes: a true
        # match then shows up as at least three pair keys (the l-prefix principle with l = 3).
        floor = np.maximum(min_alpha(m, threshold), min_alpha(n, threshold)) + 1
        triple = (need >= np.maximum(floor, 3)) & (np.maximum(m, n) <= _LONG)
        self._table = 2 * need + triple
        self._pairs_len = self._singles_len = np.empty(0, dtype=np.int64)

    def _prefixes(self, lens: Ints) -> tuple[Ints, Ints]:
        """Pair-key and single-key prefix lengths for these text lengths (tabulated)."""
        top = int(lens.max(initial=0))
        if top >= len(self._pairs_len):
            n = np.arange(max(2 * top, _TABLE), dtype=np.int64)
            self._pairs_len = np.where(n <= _LONG, prefix_len(n, self.threshold, 2), 0)
            self._singles_len = self._singles(n)
        return self._pairs_len[lens], self._singles_len[lens]

    def alpha(self, m: Ints, n: Ints) -> tuple[Ints, npt.NDArray[np.bool_]]:
        """alpha(m, n) at this threshold, and whether a match must show three pair keys."""
        small = (m < _TABLE) & (n < _TABLE)
        if small.all():
            code = self._table[m * _TABLE + n]
            return code >> 1, (code & 1).astype(bool)
        code = np.zeros(len(m), dtype=np.int64)
        code[small] = self._table[m[small] * _TABLE + n[small]]
        return np.where(small, code >> 1, alpha(m, n, self.threshold)), (code & 1).astype(bool)

    def keys(self, tokens: Ints, lens: Ints, register: bool) -> Keys:
        """Prefix keys of a batch (lens[i] tokens each, concatenated in tokens)."""
        owner, codes = _element_codes(tokens, lens)
        sorted_ranks = np.sort((owner << 31) | self.order.rank(codes, register)) & _SINGLE
        starts = np.concatenate(([0], np.cumsum(lens)[:-1])).astype(np.int64)
        pos = np.arange(len(owner), dtype=np.int64) - starts[owner]
        pairs_len, singles_len = self._prefixes(lens)
        pair = np.flatnonzero((pos >= 1) & (pos < pairs_len[owner]))
        first = np.repeat(pair, pos[pair]) - np.repeat(pos[pair], pos[pair]) + _ragged(pos[pair])
        second = np.repeat(pair, pos[pair])
        one = np.flatnonzero(pos < singles_len[owner])
        raw = np.concatenate(
            (
                (sorted_ranks[first] << 31) | sorted_ranks[second],
                (sorted_ranks[one] << 31) | _SINGLE,
            )
        )
        hashes = (raw.astype(np.uint64) * _MULT) >> np.uint64(22)
        at = np.concatenate((second, one))
        ell = np.concatenate((np.full(len(second), 2), np.ones(len(one), dtype=np.int64)))
        order = np.argsort(hashes)  # sorted lookups walk the runs in order: far fewer cache misses
        return Keys(lens, hashes[order], owner[at][order], pos[at][order], ell[order])

    def _singles(self, n: Ints) -> Ints:
        """Prefix indexed by single elements: all of it for texts one shared token can match,
        the l = 1 prefix for long texts, and what partners longer than _LONG need for others."""
        t = self.threshold
        one = np.ones_like(n)
        reach = alpha(n, one * (_LONG + 1), t)
        short = np.where(reach <= n, n - reach + 1, 0)
        long_ = np.where(n > _LONG, prefix_len(n, t, 1), short)
        return np.where(f_measure(one, one, n) > t, n, long_)

    def run(self, keys: Keys) -> Run:
        """Sorted run of a batch's keys, posted under batch positions."""
        packed = _pack(keys.hashes, keys.lens[keys.owner], keys.pos)
        order = np.argsort(packed, kind="stable")
        return Run(packed[order], keys.owner[order].astype(np.int32))

    def add(self, run: Run) -> None:
        """Append a run, merging while the newest is not much smaller than the one before."""
        self.runs.append(run)
        while len(self.runs) > 1 and 4 * len(self.runs[-1].packed) >= len(self.runs[-2].packed):
            newest = self.runs.pop()
            self.runs[-1] = merge(self.runs[-1], newest)

    def probe(self, keys: Keys, run: Run, lens: Ints, earlier_only: bool = False) -> Ints:
        """Pairs (owner << 32 | id) that pass the length and positional filters, unique."""
        t = self.threshold
        m = keys.lens[keys.owner]
        most = m - keys.pos + keys.ell  # the largest alpha a key at this position can serve
        low = np.minimum(np.maximum((t / (2 - t) * m).astype(np.int64) - 1, 0), _NMAX)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            reach = np.floor(2 * most / t - m) + 2 if t else np.full(len(m), np.inf)
        high = np.maximum(np.minimum(reach, _NMAX), -1).astype(np.int64)  # t > 0: never NaN
        start = np.searchsorted(run.packed, _pack(keys.hashes, low, low * 0))
        stop = np.searchsorted(
            run.packed, _pack(keys.hashes, np.maximum(high, 0), m * 0 + _QMAX), "right"
        )
        counts = np.where(high >= low, stop - start, 0)
        parts = [slice(None)] if counts.sum() <= _CHUNK else _chunks(counts)
        found = [self._filter(keys, run, lens, part, start, counts, earlier_only) for part in parts]
        once = np.concatenate([f[0] for f in found])
        triples, seen = np.unique(np.concatenate([f[1] for f in found]), return_counts=True)
        return np.unique(np.concatenate((once, triples[seen >= 3])))

    def _filter(
        self,
        keys: Keys,
        run: Run,
        lens: Ints,
        part: slice,
        start: Ints,
        counts: Ints,
        earlier: bool,
    ) -> tuple[Ints, Ints]:
        """Exact length and positional filters over one chunk of expanded postings: pairs that
        pass on one key, and pairs that need three keys (one entry per passing key)."""
        rows = np.repeat(np.arange(len(counts))[part], counts[part])
        at = np.repeat(start[part], counts[part]) + _ragged(counts[part])
        ids = run.ids[at].astype(np.int64)
        x = keys.owner[rows]
        m, n = keys.lens[x], lens[ids]
        a, triple = self.alpha(m, n)
        ell = keys.ell[rows]
        q = (run.packed[at] & np.uint64(_QMAX)).astype(np.int64)
        pos = keys.pos[rows]
        feasible = a <= np.minimum(m, n)
        if earlier:
            feasible &= ids < x
        triple &= ell == 2
        wide = feasible & (pos <= m - a + ell) & (q <= n - a + ell)
        ok = wide & (pos <= m - a + ell - 1) & (q <= n - a + ell - 1) & ~triple
        ok &= (ell == 2) | (a == 1) | (np.maximum(m, n) > _LONG)  # else pair keys find it
        pairs = (x << 32) | ids
        return pairs[ok], pairs[wide & triple]


def element_codes(tokens: Iterable[int]) -> list[int]:
    """Codes ((occurrence << 32) | token) of one text's elements, as _element_codes makes them."""
    seen: dict[int, int] = {}
    out = []
    for token in tokens:
        k = seen.get(token, 0)
        seen[token] = k + 1
        out.append(k << 32 | token)
    return out


class Overlaps:
    """Elements shared by a query and every text: an upper bound of their LCS.

    The _COMMON most common elements (as of the last rebuild) are bits in per-text masks and are
    counted with popcount; the others have postings, sorted in bulk at a rebuild and appended
    one text at a time after it.
    """

    def __init__(self) -> None:
        self.size = 0
        self.built = 0  # texts at the last rebuild
        self._masks: Words = np.zeros((0, 0), dtype=np.uint64)
        self._lens: npt.NDArray[np.float32] = np.zeros(0, dtype=np.float32)
        self._common: dict[int, int] = {}
        self._codes: Ints = np.empty(0, dtype=np.int64)
        self._starts: Ints = np.zeros(1, dtype=np.int64)
        self._ids: npt.NDArray[np.intc] = np.empty(0, dtype=np.intc)
        self._added: dict[int, array[int]] = {}
        self.calls = 0  # of ratios: a row it returned is valid until the next call
        self._shared: npt.NDArray[np.unsignedinteger[Any]] = np.empty(0, dtype=np.uint8)
        self._word: Words = np.empty(0, dtype=np.uint64)
        self._ratio: npt.NDArray[np.float32] = np.empty(0, dtype=np.float32)

    def rebuild(self, tokens: Ints, lens: Ints) -> None:
        """Index these texts afresh, taking the common elements from them."""
        owner, codes = _element_codes(tokens, lens)
        uniq, inverse, df = np.unique(codes, return_inverse=True, return_counts=True)
        top = np.lexsort((uniq, -df))[:_COMMON]
        bit = np.full(len(uniq), -1, dtype=np.int64)
        bit[top] = np.arange(len(top))
        self._common = dict(zip(uniq[top].tolist(), range(len(top)), strict=True))
        self.size, self.built = len(lens), len(lens)
        self._masks = np.zeros(((len(top) + 63) // 64, max(2 * len(lens), 1024)), np.uint64)
        self._lens = np.zeros(self._masks.shape[1], dtype=np.float32)
        self._lens[: len(lens)] = lens
        at = bit[inverse]
        common = at >= 0
        shift = np.left_shift(np.uint64(1), (at[common] & 63).astype(np.uint64))
        np.bitwise_or.at(self._masks, (at[common] >> 6, owner[common]), shift)
        rare = np.argsort(inverse[~common], kind="stable")  # owners stay ascending per element
        self._ids = owner[~common][rare].astype(np.intc)  # as array("i") of added texts
        self._codes = uniq[bit < 0]
        self._starts = np.concatenate(([0], np.cumsum(df[bit < 0])))
        self._added = {}

    def add(self, codes: list[int], length: int) -> None:
        """Index one more text, given its element codes."""
        i = self.size
        if i == self._masks.shape[1]:
            self._masks = np.concatenate((self._masks, np.zeros_like(self._masks)), axis=1)
            self._lens = np.concatenate((self._lens, np.zeros_like(self._lens)))
        words, rare = self._split(codes)
        self._masks[:, i] = words
        self._lens[i] = length
        for code in rare:
            self._added.setdefault(code, array("i")).append(i)
        self.size += 1

    def ratios(self, codes: list[int], size: int) -> npt.NDArray[np.float32]:
        """Shared elements / (m + n) of a query (given by its m element codes) and each of the
        first `size` texts, in float32: about F's bound / 2. Written over scratch buffers that
        the next call reuses (`calls` counts them): a few passes over the pool, no allocation."""
        self.calls += 1
        if len(self._ratio) < size or np.iinfo(self._shared.dtype).max < len(codes):
            capacity = max(self._masks.shape[1], size)
            counts = np.promote_types(np.uint8, np.min_scalar_type(len(codes)))
            self._shared = np.empty(capacity, dtype=counts)
            self._word = np.empty(capacity, dtype=np.uint64)
            self._ratio = np.empty(capacity, dtype=np.float32)
        shared, word, ratio = self._shared[:size], self._word[:size], self._ratio[:size]
        words, rare = self._split(codes)
        shared[:] = 0
        for w, bits in enumerate(words):
            if bits:
                np.bitwise_and(self._masks[w, :size], np.uint64(bits), out=word)
                shared += np.bitwise_count(word).astype(shared.dtype, copy=False)
        if postings := self._postings(rare):
            at = np.concatenate(postings)
            one = shared.dtype.type(1)  # add.at's fast path needs the array's own type
            np.add.at(shared, at[at < size] if size < self.size else at, one)  # unique per code
        np.add(self._lens[:size], np.float32(len(codes)), out=ratio)
        with np.errstate(invalid="ignore"):  # 0 / 0: an empty query and an empty text
            np.divide(shared, ratio, out=ratio)
        return ratio

    def _split(self, codes: list[int]) -> tuple[list[int], list[int]]:
        """Mask words of the common codes, and the other codes."""
        words, rare = [0] * len(self._masks), []
        for code in codes:
            b = self._common.get(code)
            if b is None:
                rare.append(code)
            else:
                words[b >> 6] |= 1 << (b & 63)
        return words, rare

    def _postings(self, codes: list[int]) -> list[npt.NDArray[np.intc]]:
        """Texts holding each of these (uncommon) codes, one array per code and part."""
        arr = np.array(codes, dtype=np.int64)
        at = np.minimum(np.searchsorted(self._codes, arr), max(len(self._codes) - 1, 0))
        hit = at[self._codes[at] == arr] if len(self._codes) else at[:0]
        out = [self._ids[self._starts[a] : self._starts[a + 1]] for a in hit.tolist()]
        added = (self._added.get(code) for code in codes)
        return out + [np.frombuffer(a, dtype=np.intc) for a in added if a]
