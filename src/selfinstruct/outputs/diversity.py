"""Lexical diversity of a set of texts, for `stats` (docs/outputs.md, "Diversity").

- MTLD (McCarthy & Jarvis 2010), the measure behind the published figures (Self-Instruct-52K
  25.9, ShareGPT 77.3, FLAN-T5 48.5): the texts' tokens in file order as one sequence; a
  factor ends where the running type-token ratio falls to 0.72 or below, the rest counts as a
  partial factor (1 - TTR) / (1 - 0.72); tokens / factors, the mean of a forward and a
  backward pass. Exactly as the lexicalrichness package computes it (tests hold it to that).
- distinct-n (Li et al. 2016): distinct n-grams / all n-grams, n-grams within a text.
- the mean ROUGE-L F over all pairs of a seeded sample (method.similarity.mean_pairwise).

Tokens are ROUGE-L's (lowercase runs of [a-z0-9]), so the three agree on what a word is.
"""

from __future__ import annotations

import random
import re
from collections.abc import Hashable, Sequence
from typing import Protocol

import numpy as np
from pydantic import BaseModel

from selfinstruct.method.similarity import mean_pairwise

MTLD_THRESHOLD = 0.72
ROUGE_SAMPLE = 1000  # texts in the pairwise ROUGE-L sample: 499,500 pairs
_TOKEN_OR_END = re.compile(r"[a-z0-9]+|\x00")  # similarity.tokenize's tokens, or a text's end


class Figures(BaseModel):
    """The diversity of one set of texts."""

    texts: int
    tokens: int
    mtld: float | None
    distinct_1: float | None
    distinct_2: float | None
    rouge_l: float | None  # mean pairwise ROUGE-L F of the sample
    rouge_sample: int


def mtld(ids: Sequence[Hashable], threshold: float = MTLD_THRESHOLD) -> float | None:
    """MTLD of a token sequence (any hashable tokens); None for an empty one."""
    if not ids:
        return None
    forward = _mtld_pass(ids, threshold)
    backward = _mtld_pass(ids[::-1], threshold)
    return (forward + backward) / 2


def _mtld_pass(ids: Sequence[Hashable], threshold: float) -> float:
    seen: set[Hashable] = set()
    count, factors = 0, 0.0
    for token in ids:
        count += 1
        if token not in seen:
            seen.add(token)  # a new type only raises the ratio: no factor can end here
        elif len(seen) / count <= threshold:
            factors += 1
            seen = set()
            count = 0
    if count:
        factors += (1 - len(seen) / count) / (1 - threshold)
    if factors == 0:  # the type-token ratio never fell: every token differs
        overall = len(set(ids)) / len(ids)
        factors = 1.0 if overall == 1 else (1 - overall) / (1 - threshold)
    return len(ids) / factors


def encode(texts: Sequence[str]) -> tuple[list[int], np.ndarray]:
    """All tokens of `texts` as ids, in order, and where each text starts (n + 1 offsets).

    One regular-expression pass over the texts joined by a separator that no token holds;
    tokens are the same as tokenize's (each text lowercased, runs of [a-z0-9])."""
    if not texts:
        return [], np.zeros(1, dtype=np.int64)
    if any("\x00" in text for text in texts):  # NUL is no token: a space keeps the tokens
        texts = [text.replace("\x00", " ") for text in texts]
    tokens = _TOKEN_OR_END.findall("\x00".join(texts).lower())
    vocab = {w: i for i, w in enumerate(w for w in dict.fromkeys(tokens) if w != "\x00")}
    vocab["\x00"] = -1
    ids = list(map(vocab.__getitem__, tokens))
    ends = np.flatnonzero(np.array(ids, dtype=np.int64) == -1)  # ends[k]: k tokens of ends before
    inner = ends - np.arange(len(ends))  # where texts 2.. start, in the ids without separators
    starts = np.concatenate(([0], inner, [len(ids) - len(ends)])).astype(np.int64)
    return ([i for i in ids if i >= 0] if len(ends) else ids), starts


def distinct(ids: np.ndarray, starts: np.ndarray, n: int) -> float | None:
    """Distinct n-grams over all n-grams, counting only n-grams inside one text."""
    count = len(ids) - n + 1
    if count <= 0:
        return None
    base = int(ids.max()) + 1
    if base**n >= 2**63:
        raise ValueError(f"distinct-{n}: a vocabulary of {base} words is too large")
    keys = np.zeros(count, dtype=np.int64)
    for k in range(n):
        keys = keys * base + ids[k : k + count]
    inside = np.ones(count, dtype=bool)
    bounds = starts[1:-1]  # an n-gram starting at i crosses b when b - n < i < b
    for k in range(1, n):
        crossing = bounds - k
        inside[crossing[(crossing >= 0) & (crossing < count)]] = False
    kept = np.sort(keys[inside])  # sorted, distinct keys are where the value changes
    if not len(kept):
        return None
    return (1 + int(np.count_nonzero(kept[1:] != kept[:-1]))) / len(kept)


def diversity_figures(texts: Sequence[str], seed: int = 0, sample: int = ROUGE_SAMPLE) -> Figures:
    ids, starts = encode(texts)
    array = np.array(ids, dtype=np.int64)
    chosen = random.Random(seed).sample(list(texts), sample) if len(texts) > sample else texts
    return Figures(
        texts=len(texts),
        tokens=len(ids),
        mtld=mtld(ids),
        distinct_1=distinct(array, starts, 1),
        distinct_2=distinct(array, starts, 2),
        rouge_l=mean_pairwise(chosen),
        rouge_sample=len(chosen),
    )


class DiversityColumn(BaseModel):
    """The diversity of one part of a pool: its instructions and their outputs."""

    label: str  # "pool", or "before evolve" / "after evolve"
    instructions: Figures
    outputs: Figures


class _Task(Protocol):
    @property
    def instruction(self) -> str: ...

    @property
    def instances(self) -> Sequence[_Output]: ...


class _Output(Protocol):
    @property
    def output(self) -> str: ...


def column(label: str, tasks: Sequence[_Task], seed: int = 0) -> DiversityColumn:
    outputs = [inst.output for task in tasks for inst in task.instances]
    return DiversityColumn(
        label=label,
        instructions=diversity_figures([t.instruction for t in tasks], seed),
        outputs=diversity_figures(outputs, seed),
    )


def pool_diversity(tasks: Sequence[_Task], evolved: set[str]) -> list[DiversityColumn]:
    """The tasks' diversity; when some instructions were evolved, without them and with them."""
    if not evolved:
        return [column("pool", tasks)]
    before = [t for t in tasks if t.instruction not in evolved]
    return [column("before evolve", before), column("after evolve", tasks)]
