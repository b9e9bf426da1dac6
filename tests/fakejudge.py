"""The fake server's judge mode: it grades an instance of our judge prompts (prompts/curate.txt,
prompts/review.txt) by rules a test can predict, and words its replies as chat models do.

Score: 1 for an empty or residue-laden output, 2 for an output that repeats the instruction,
otherwise 4 or 5 by a hash of the output. Review: the task is valid with 3+ words, the input
is fine unless it holds residue, the output is correct when its score is 4+; all four: all.
An output holding NO-VERDICT gets a reply without a verdict every time; SECOND-TRY, none at
temperature 0 (the retry, sampled, gets one).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

RESIDUE = re.compile(r"^\s*(?:sure\b|here(?:'s| is)\b|certainly\b)|```|\*\*output|as an ai\b", re.I)
_TAG = re.compile(r"<(instruction|input|response)>\n(.*?)\n?</\1>", re.DOTALL)
REVIEW_MARK = "Answer four questions"
CURATE_MARK = "Score: <1 to 5>"


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _hash(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def expected_score(instruction: str, given: str, output: str) -> int:
    if not output.strip() or RESIDUE.search(output):
        return 1
    if _norm(instruction) in _norm(output):
        return 2
    return 4 + _hash(output) % 2


def expected_answers(instruction: str, given: str, output: str) -> list[bool]:
    task = len(instruction.split()) >= 3
    fits = not RESIDUE.search(given)
    correct = expected_score(instruction, given, output) >= 4
    return [task, fits, correct, task and fits and correct]


def fields(prompt: str) -> tuple[str, str, str]:
    found = {name: text for name, text in _TAG.findall(prompt)}
    return found.get("instruction", ""), found.get("input", ""), found.get("response", "")


def withheld(output: str, body: dict[str, Any]) -> bool:
    """Whether this request gets a reply without a verdict."""
    return "NO-VERDICT" in output or ("SECOND-TRY" in output and not body.get("temperature"))


def judge_reply(prompt: str, body: dict[str, Any]) -> str | None:
    """The judge's reply to one of our judge prompts; None for any other prompt."""
    if REVIEW_MARK not in prompt and CURATE_MARK not in prompt:
        return None
    instruction, given, output = fields(prompt)
    if withheld(output, body):
        return "This is a hard one to grade; the response has some merit and some problems."
    style = _hash(instruction + output) % 5
    if REVIEW_MARK in prompt:
        return _answers(expected_answers(instruction, given, output), style)
    return _score(expected_score(instruction, given, output), style)


def _score(score: int, style: int) -> str:
    reason = ["", "The response is empty or not an answer.", "It mostly repeats the task."]
    why = reason[score] if score < 3 else "It answers the task correctly and clearly."
    return [
        f"Reason: {why}\nScore: {score}",
        f"**Evaluation**\n\n{why}\n\n**Score:** {score}/5",
        f"Sure! Here is my grade.\n\nRating: {score} out of 5\n\n{why} Anything else?",
        f'```json\n{{"reason": "{why}", "score": {score}}}\n```',
        f"{why}\n\n**{score}**",
    ][style]


def _answers(answers: list[bool], style: int) -> str:
    words = ["Yes" if a else "No" for a in answers]
    reasons = ["the task is clear", "the input suits it", "the response is right", "all fine"]
    reasons = [r if a else "not " + r for r, a in zip(reasons, answers, strict=True)]
    if style == 0:
        obj = {
            str(k): {"answer": w.lower(), "reason": r}
            for k, (w, r) in enumerate(zip(words, reasons, strict=True), 1)
        }
        return "```json\n" + json.dumps(obj) + "\n```"
    lines = [f"{k}. {w} - {r}" for k, (w, r) in enumerate(zip(words, reasons, strict=True), 1)]
    if style == 1:
        lines = [
            f"**Q{k}:** {w}. {r}" for k, (w, r) in enumerate(zip(words, reasons, strict=True), 1)
        ]
    if style == 2:
        return "Here are my answers:\n\n" + "\n".join(lines) + "\n\nHope this helps!"
    return "\n".join(lines)
