"""The fake server's candidate mode for `preferences`: a chat request that carries a `seed` is
a candidate answer, the same text for the same (prompt, seed) every time, and some bad on
purpose so that the judge (tests/fakejudge.py) has something to tell apart.

Per prompt, by a hash of the user turn: one in five prompts gets the same good answer for
every seed (the judge ties them); one in eleven has a first candidate the judge never scores
(NO-VERDICT); one in seven only good ones (4s and 5s: a pair at margin 1, not at 2); the
others cycle through KINDS from a hashed start, one kind per seed. A good
answer's score is 4 or 5 (fakejudge.expected_score), an empty or wrapped one 1, one that
repeats the instruction 2.
"""

from __future__ import annotations

import random
from typing import Any

from tests.fakecorpus import seed_of, sentence

IGNORES_N = "ignores-n"  # a model whose server gives one choice whatever `n` says (llama.cpp)
KINDS = ("good", "empty", "good", "repeat", "chatty", "good", "fenced")


def user_turn(body: dict[str, Any]) -> str:
    messages = body.get("messages") or []
    return next((str(m["content"]) for m in reversed(messages) if m.get("role") == "user"), "")


def kind(user: str, seed: int) -> str:
    h = seed_of("prefs", user)
    if h % 5 == 0:
        return "same"
    if h % 11 == 1 and seed == 0:
        return "unjudgeable"
    if h % 7 == 3:
        return "good"
    return KINDS[(h // 5 + seed) % len(KINDS)]


def candidate(user: str, seed: int) -> str:
    """The fake generator's candidate `seed` for a user turn."""
    what = kind(user, seed)
    rng = random.Random(seed_of("answer", user, 0 if what == "same" else seed))
    good = f"{sentence(rng)} {sentence(rng)}"
    instruction = user.split("\n\n")[0]
    return {
        "same": good,
        "good": good,
        "empty": "",
        "repeat": f"{instruction} {sentence(rng)}",
        "chatty": f"Sure! Here's my answer:\n\n{good}\n\nLet me know if you need anything else.",
        "fenced": f"```\n{good}\n```",
        "unjudgeable": f"{good} NO-VERDICT",
    }[what]


def choice(body: dict[str, Any], index: int) -> dict[str, Any]:
    """The body choice `index` of a request with `n` answers: with a seed, as if asked with
    seed + index (so one request with n gives what n requests with seeds would)."""
    seed = body.get("seed")
    return {**body, "seed": seed + index} if index and isinstance(seed, int) else body


def reply(body: dict[str, Any]) -> str | None:
    """A candidate answer for a chat request with a seed; None for any other request."""
    if "messages" not in body or not isinstance(body.get("seed"), int):
        return None
    return candidate(user_turn(body), body["seed"])
