"""Evolving an instruction: the operations, the reply's cleaning, and the checks that it changed.

The checks before stage 1's rules (docs/evolve.md): a reply that is empty, a refusal, an answer to
the instruction instead of a new one, or the instruction again (the same words, ignoring case and
punctuation) is rejected with that reason; everything else then meets stage 1's filters and its
ROUGE-L novelty test against the whole pool.
"""

from __future__ import annotations

import re

from selfinstruct.errors import ConfigError
from selfinstruct.method.parsing import chat_residue, clean_item
from selfinstruct.method.prompts import EVOLVE_OPS
from selfinstruct.method.similarity import tokenize

__all__ = ["EVOLVE_OPS", "changed", "clean_reply", "parse_ops"]

_FENCE = re.compile(r"^\s*(?:```|~~~)\w*\s*$")
# "Here is the rewritten instruction:", "Sure! Here's a harder version:", "**New instruction:**"
_LEAD = re.compile(
    r"^\s*(?:(?:sure|certainly|of course|okay|ok)[!,.]?\s*)?"
    r"(?:here(?:'s| is)\s+(?:the|a|an|my|your)\s+(?:\w+\s+){0,3}"
    r"(?:instruction|version|task|prompt|rewrite)\b[^:\n]*:?|"
    r"[*_#\s]*(?:rewritten|new|evolved|revised|harder|updated)\s+(?:instruction|task|version)"
    r"\s*[*_]*\s*:[*_]*)\s*",
    re.IGNORECASE,
)
_REFUSAL = re.compile(
    r"^\W*(?:i'?m sorry|i am sorry|sorry,|i apologi[sz]e|i can(?:not|'t|\u2019t)|i won'?t"
    r"|i am (?:not able|unable)|i'?m (?:not able|unable)|as an ai\b|unfortunately,? i\b"
    r"|i (?:must|have to) decline)",
    re.IGNORECASE,
)
# What opens an answer: a label, or an announcement of the thing the instruction asked for.
_ANSWER = re.compile(
    r"^\W*(?:(?:answer|response|solution|output|result)\s*:"
    r"|(?:sure|certainly|of course|okay)[!,.]?\s+(?:here|let|i)\b"
    r"|here(?:'s| is| are)\s+(?:the|a|an|my|some)\s+(?!(?:\w+\s+){0,3}"
    r"(?:instruction|version|task|prompt|rewrite)\b)"
    r"|the answer is\b|let'?s (?:solve|start|break|think)\b)",
    re.IGNORECASE,
)
ANSWER_PARAGRAPHS = 3  # an instruction rarely runs to three paragraphs; an answer often does


def parse_ops(text: str) -> tuple[str, ...]:
    """ "constraints,deepen" -> the operations, in EVOLVE_OPS order; an unknown one is an error."""
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    if not names:
        raise ConfigError(f"--ops: name at least one operation: {', '.join(EVOLVE_OPS)}")
    for name in names:
        if name not in EVOLVE_OPS:
            raise ConfigError(
                f"--ops: unknown operation '{name}'; choose from {', '.join(EVOLVE_OPS)}"
            )
    return tuple(op for op in EVOLVE_OPS if op in names)


def clean_reply(text: str) -> str:
    """The instruction a reply holds: without fences, a lead-in label, closing remarks, or
    emphasis and quotes around the whole text; inner line breaks kept."""
    lines = [line for line in text.strip().splitlines() if not _FENCE.match(line)]
    text = "\n".join(lines).strip()
    text = _LEAD.sub("", text, count=1).strip()
    paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
    while len(paragraphs) > 1 and chat_residue("x\n" + paragraphs[-1]) is not None:
        paragraphs.pop()  # "Let me know if you want another version."
    text = "\n\n".join(paragraphs)
    if "\n" not in text:
        return clean_item(text) or ""
    return text


def changed(parent: str, text: str) -> tuple[str, str] | None:
    """(reason, detail) when a cleaned reply is not a new instruction, else None."""
    if not text.strip():
        return ("empty", "")
    if _REFUSAL.match(text):
        return ("refusal", text[:80])
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    if _ANSWER.match(text) or len(paragraphs) >= ANSWER_PARAGRAPHS:
        return ("answer", text[:80])
    if tokenize(text) == tokenize(parent):
        return ("unchanged", "the same words as its parent")
    return None
