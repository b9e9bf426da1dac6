"""A judge's replies, read tolerantly: a 1-5 score, yes/no answers to numbered questions, and
the reason given; the Wilson interval of a share of yes (pure functions, docs/judge.md)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

SCALE = range(1, 6)
_JSON = re.compile(r"\{[^{}]*\}", re.DOTALL)
_LABELLED = re.compile(
    r"\b(?:final\s+)?(?:score|rating|grade)\b[*_\s]*(?:is|of|=|:)?[*_\s:]*\(?([1-5])(?![\d.]*\d)"
    r"(?:\s*(?:/|out\s+of)\s*5)?",
    re.IGNORECASE,
)
_OUT_OF = re.compile(r"(?<![\d.])([1-5])\s*(?:/|out\s+of)\s*5\b", re.IGNORECASE)
_BOLD = re.compile(r"(?:\*\*|__)\s*([1-5])\s*(?:\*\*|__)")
_BARE = re.compile(r"^\W*([1-5])\W*$")
_REASON = re.compile(
    r"^[\s*_#>-]*(?:reason(?:ing)?|explanation|rationale|justification)[*_\s]*:[*_\s]*(.+)",
    re.IGNORECASE | re.MULTILINE,
)
_VERDICT_LINE = re.compile(
    r"^.*\b(?:score|rating|grade)\b.*$|^\W*[1-5]\s*(?:/\s*5)?\W*$", re.IGNORECASE | re.MULTILINE
)
_ANSWER = re.compile(
    r"^[ \t*_#>-]*(?:q(?:uestion)?[ \t]*)?([1-9])[.):*_ \t]+(?:[^\n]*?[?:][ \t]*)?"
    r"[*_ \t\"]*(yes|no)\b[*_\"]*[ \t:.,;)\u2014\u2013-]*(.*)$",
    re.IGNORECASE | re.MULTILINE,
)
REASON_CHARS = 300


def _objects(text: str) -> list[dict[str, Any]]:
    """The JSON objects of a reply (fenced or inline), in order."""
    found = []
    for match in _JSON.finditer(text):
        try:
            obj = json.loads(match.group())
        except ValueError:
            continue
        if isinstance(obj, dict):
            found.append({str(k).lower(): v for k, v in obj.items()})
    return found


def _as_score(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and float(value).is_integer() and int(value) in SCALE:
        return int(value)
    if isinstance(value, str) and (m := _BARE.match(value.strip())):
        return int(m[1])
    return None


def parse_score(text: str) -> int | None:
    """The 1-5 score of a reply: a JSON "score", the last "Score: 4" / "Rating 4/5", a lone
    "4/5" or "**4**", or a reply that is only the digit; None when there is none or the reply
    names several different scores the same way (ambiguous, so it is asked again)."""
    for obj in reversed(_objects(text)):
        for key in ("score", "rating", "grade"):
            if (score := _as_score(obj.get(key))) is not None:
                return score
    for pattern in (_LABELLED, _OUT_OF, _BOLD):
        scores = [int(m[1]) for m in pattern.finditer(text)]
        if scores:
            return scores[-1] if pattern is _LABELLED or len(set(scores)) == 1 else None
    bare = _BARE.match(text.strip())
    return int(bare[1]) if bare else None


def parse_reason(text: str) -> str:
    """The judge's short reason: a JSON "reason", a "Reason:" line, else the reply without the
    verdict line; at most REASON_CHARS characters on one line."""
    for obj in reversed(_objects(text)):
        for key in ("reason", "explanation", "rationale", "justification"):
            if isinstance(obj.get(key), str) and obj[key].strip():
                return _one_line(obj[key])
    if found := _REASON.search(text):
        return _one_line(found[1])
    return _one_line(_VERDICT_LINE.sub("", text.replace("```", "")))


def _one_line(text: str) -> str:
    flat = " ".join(text.replace("**", "").split())
    return flat if len(flat) <= REASON_CHARS else flat[: REASON_CHARS - 3].rstrip() + "..."


def parse_answers(text: str, count: int) -> list[tuple[bool, str]] | None:
    """Yes/no answers to questions 1..count with their reasons: a JSON object {"1": {"answer":
    "yes", "reason": ...}} or {"answers": [...]}, or numbered lines ("2. No - the input is
    missing", "**Q3:** Yes."); None unless every question has an answer."""
    if (answers := _json_answers(text, count)) is not None:
        return answers
    got: dict[int, tuple[bool, str]] = {}
    for m in _ANSWER.finditer(text):
        number = int(m[1])
        if 1 <= number <= count and number not in got:
            got[number] = (m[2].lower() == "yes", _one_line(m[3]))
    return [got[n] for n in range(1, count + 1)] if len(got) == count else None


def _json_answers(text: str, count: int) -> list[tuple[bool, str]] | None:
    for obj in reversed(_objects_nested(text)):
        items = obj.get("answers")
        if isinstance(items, list) and len(items) == count:
            values = items
        elif all(str(n) in obj for n in range(1, count + 1)):
            values = [obj[str(n)] for n in range(1, count + 1)]
        else:
            continue
        answers = [_json_answer(v) for v in values]
        if all(a is not None for a in answers):
            return [a for a in answers if a is not None]
    return None


def _json_answer(value: Any) -> tuple[bool, str] | None:
    if isinstance(value, dict):
        value = {str(k).lower(): v for k, v in value.items()}
        reason = value.get("reason") or value.get("explanation") or ""
        answer = value.get("answer", value.get("valid"))
    else:
        answer, reason = value, ""
    if isinstance(answer, bool):
        return answer, _one_line(str(reason))
    if isinstance(answer, str) and answer.strip().lower().strip(".!") in ("yes", "no"):
        return answer.strip().lower().startswith("y"), _one_line(str(reason))
    return None


def _objects_nested(text: str) -> list[dict[str, Any]]:
    """The outermost JSON objects of a reply, nested ones included in them."""
    found, decoder, start = [], json.JSONDecoder(), 0
    while (start := text.find("{", start)) != -1:
        try:
            obj, end = decoder.raw_decode(text, start)
        except ValueError:
            start += 1
            continue
        if isinstance(obj, dict):
            found.append({str(k).lower(): v for k, v in obj.items()})
        start = end
    return found


def wilson(yes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The 95% Wilson score interval of a share of yes (Wilson 1927); (0, 1) when n is 0."""
    if n == 0:
        return 0.0, 1.0
    p = yes / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    scale = 1 + z * z / n
    return max(0.0, (centre - spread) / scale), min(1.0, (centre + spread) / scale)
