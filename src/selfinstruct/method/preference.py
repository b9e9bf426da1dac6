"""Self-Rewarding's choice of a preference pair (Yuan et al., 2024): among a prompt's scored
candidates, the best is `chosen` and the worst `rejected`, kept only when their scores differ
by at least the margin. Nothing is guessed: a candidate without a score takes no part, and a
prompt with fewer than two scored candidates has no pair (pure functions, docs/preferences.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

PAIR, TIE, MARGIN, UNSCORED = "pair", "tie", "margin", "unscored"
OUTCOMES = (PAIR, TIE, MARGIN, UNSCORED)


class Choice(NamedTuple):
    outcome: str
    chosen: int | None = None  # indexes into the candidates
    rejected: int | None = None


def choose(scores: Sequence[int | None], margin: int) -> Choice:
    """The pair of a prompt's candidate scores: the first of the highest and the first of the
    lowest (candidates in the order they were asked for); `tie` when all scored candidates
    have one score, `margin` when the spread is below `margin`."""
    scored = [(score, k) for k, score in enumerate(scores) if score is not None]
    if len(scored) < 2:
        return Choice(UNSCORED)
    high = min(scored, key=lambda sk: (-sk[0], sk[1]))
    low = min(scored, key=lambda sk: (sk[0], sk[1]))
    if high[0] == low[0]:
        return Choice(TIE)
    if high[0] - low[0] < margin:
        return Choice(MARGIN)
    return Choice(PAIR, high[1], low[1])
