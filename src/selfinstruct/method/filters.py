"""Instruction filters: each returns None to keep, or the reason to drop."""

from __future__ import annotations

import re
import string

# The method's blacklist: tasks a text-only model cannot do.
BLACKLIST = (
    "image",
    "images",
    "graph",
    "graphs",
    "picture",
    "pictures",
    "file",
    "files",
    "map",
    "maps",
    "draw",
    "plot",
    "go to",
)
MIN_WORDS, MAX_WORDS = 4, 150


def blacklist_pattern(words: tuple[str, ...] | list[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(w) for w in words)
    return re.compile(rf"\b(?:{alternatives})\b", re.IGNORECASE)


class InstructionFilter:
    """The method's checks on a generated instruction, in the method's order."""

    def __init__(self, blacklist: tuple[str, ...] | list[str] = BLACKLIST) -> None:
        self.pattern = blacklist_pattern(blacklist) if blacklist else None

    def __call__(self, text: str) -> tuple[str, str] | None:
        """(reason, detail) for a rejected instruction, None for a kept one."""
        if not text.strip():
            return ("empty", "no text")
        words = len(text.split())
        if words < MIN_WORDS:
            return ("too_short", f"{words} words")
        if words > MAX_WORDS:
            return ("too_long", f"{words} words")
        if self.pattern and (found := self.pattern.search(text)):
            return ("blacklisted_word", found.group(0))
        if text.lower().startswith("write a program"):
            return ("write_a_program", text[: len("write a program")])
        if text[0] in string.punctuation:
            return ("starts_with_punctuation", text[0])
        if not text[0].isascii():
            return ("starts_non_ascii", text[0])
        return None
