"""Pure functions that turn completion text into candidate records."""

from __future__ import annotations

import re

# "9.", "9)", "9 .", "Task 9:", "**9.**", "#9", "- 9." - a number that opens a list item.
_ITEM = re.compile(
    r"^\s*(?:[-*>#]\s*)*(?:\*\*|__)?\s*(?:(?:task|instruction)\s*)?#?(\d{1,4})\s*(?:[.):]|\s-)"
    r"(?:\*\*|__)?\s*(.*)$",
    re.IGNORECASE,
)
_LABEL = re.compile(r"^(?:\*\*|__)?(?:task|instruction)\s*:\s*(?:\*\*|__)?\s*", re.IGNORECASE)
_FENCE = re.compile(r"^\s*```")
_SPACES = re.compile(r"\s+")


def parse_numbered(text: str, first: int, truncated: bool) -> list[str]:
    """Items of a numbered list numbered `first` or above, in order.

    Text before the first item (a chat model's preamble) and after a blank line that ends the
    last item (closing remarks) is dropped, as are items echoing the prompt's own numbers.
    When the reply stopped for length, the last item may be cut off and is dropped.
    """
    items: list[tuple[int, list[str]]] = []
    open_item = False
    for line in text.splitlines():
        if _FENCE.match(line):
            continue
        match = _ITEM.match(line)
        if match:
            items.append((int(match.group(1)), [match.group(2)]))
            open_item = True
        elif not line.strip():
            open_item = False
        elif open_item:
            items[-1][1].append(line)
    if truncated and items:
        items.pop()
    cleaned = (clean_item(" ".join(lines)) for number, lines in items if number >= first)
    return [item for item in cleaned if item is not None]


def clean_item(text: str) -> str | None:
    """Collapse whitespace, strip markdown emphasis and labels; None for a blank item."""
    text = _SPACES.sub(" ", text).strip()
    text = _LABEL.sub("", text)
    for mark in ("**", "__"):
        if text.startswith(mark) and text.endswith(mark) and len(text) > 4:
            text = text[2:-2].strip()
    if len(text) > 1 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    text = text.rstrip(":").strip()
    if not text:
        return None
    return text[0].upper() + text[1:]


def continuation(text: str, next_number: int, api: str) -> str:
    """A completions reply continues after "N."; give it back its number so it parses alike."""
    return f"{next_number}.{text}" if api == "completions" else text
