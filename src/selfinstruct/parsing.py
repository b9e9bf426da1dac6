"""Pure functions that turn completion text into candidate records."""

from __future__ import annotations

import re
from dataclasses import dataclass

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


_NOT_CLASSIFICATION = re.compile(r"\bnot\s+(?:an?\s+)?classification\b", re.IGNORECASE)
_YES_NO = re.compile(r"\b(yes|no)\b", re.IGNORECASE)


def parse_yes_no(text: str) -> bool | None:
    """Yes/No in any case, with punctuation or a chat model's extra words; None if neither."""
    words: list[str] = re.findall(r"[a-z]+", text.lower())
    if words and words[0] in ("yes", "no"):
        return words[0] == "yes"
    if _NOT_CLASSIFICATION.search(text):
        return False
    found: set[str] = {m.lower() for m in _YES_NO.findall(text)}
    if len(found) != 1:
        return None
    return found.pop() == "yes"


@dataclass(frozen=True)
class Example:
    input: str
    output: str


_HEADER = re.compile(r"^\s*(?:[#*_]+\s*)?example\s*\d+\s*[:.)]?\s*(?:[*_]+)?\s*$", re.IGNORECASE)
_FIELD = re.compile(
    r"^\s*(?P<b>\*\*|__)?(input|output|class label|label)(?P=b)?\s*:\s*(?(b)(?P=b)?)\s*(.*)$",
    re.IGNORECASE,
)
_NEXT_TASK = re.compile(r"^\s*(?:[*_]+)?task\s*:", re.IGNORECASE)
_CHATTER = re.compile(
    r"^(?:i hope|hope this|let me know|feel free|these examples|here are|note:|i've|i have|"
    r"if you|would you like|do you want)",
    re.IGNORECASE,
)
_NO_INPUT = {"", "none", "n/a", "na", "(none)", "no input", "<noinput>", "-", "empty", "null"}


def parse_examples(text: str, truncated: bool) -> list[Example]:
    """Input-first replies: "Example N" blocks of an optional "Input:" and an "Output:".

    Fields may span lines; a field name repeated opens the next instance. Text before the
    first field (a chat preamble) and closing remarks after the last output are dropped.
    """
    examples: list[Example] = []
    for block in _blocks(text, opener=None):
        if "output" in block:
            given = block.get("input", "")
            examples.append(Example("" if _is_none(given) else given, block["output"]))
    return examples[:-1] if truncated else examples


def parse_labelled(text: str, truncated: bool) -> list[Example]:
    """Output-first replies: "Class label: X" then "Input: ..."; the label is the output."""
    examples = [
        Example(block["input"], block["label"].rstrip(".").strip())
        for block in _blocks(text, opener="label")
        if block.get("input") and block.get("label")
    ]
    return examples[:-1] if truncated else examples


def _blocks(text: str, opener: str | None) -> list[dict[str, str]]:
    """Group "Name: value" fields (values may span lines) into one dict per instance."""
    blocks: list[dict[str, list[str]]] = [{}]
    active: list[str] | None = None
    for line in text.splitlines():
        if _NEXT_TASK.match(line):
            break  # a base model that goes on to invent the next task
        if _HEADER.match(line):
            blocks.append({})
            active = None
            continue
        field = _FIELD.match(line)
        if field is None:
            if active is not None:
                active.append(line)
            continue
        name = field.group(2).lower().replace("class label", "label")
        if name == opener or name in blocks[-1] or (name == "input" and "output" in blocks[-1]):
            blocks.append({"label": blocks[-1]["label"]} if name == "input" and opener else {})
        active = blocks[-1].setdefault(name, [field.group(3)])
    return [{k: _tidy("\n".join(v)) for k, v in b.items()} for b in blocks if b]


def _tidy(text: str) -> str:
    """Trim, drop a chat model's closing remarks, unwrap **bold**."""
    paragraphs = text.strip().split("\n\n")
    while len(paragraphs) > 1 and _CHATTER.match(paragraphs[-1].strip()):
        paragraphs.pop()
    text = "\n\n".join(paragraphs).strip()
    for mark in ("**", "__"):
        if text.startswith(mark) and text.endswith(mark) and len(text) > 4:
            text = text[2:-2].strip()
    return text


def _is_none(text: str) -> bool:
    return text.lower().strip(" .") in _NO_INPUT
