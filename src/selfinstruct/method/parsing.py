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
_SPACES = re.compile(r"\s+")


def parse_numbered(text: str, first: int, last: int, truncated: bool) -> list[str]:
    """Items of a numbered list numbered `first` to `last` (the ones asked for), in order.

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
    cleaned = (clean_item(" ".join(lines)) for number, lines in items if first <= number <= last)
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


# Backtranslation replies: the instruction a model wrote for a given answer.
_REQUEST_LABEL = re.compile(
    r"^\s*(?:[#>]+\s*)?(?:\*\*|__)?\s*(?:the\s+)?(?:instruction|request|task|prompt|question"
    r"|user(?:'s)?(?:\s+(?:request|question|instruction))?|query)\s*(?:\*\*|__)?\s*"
    r"(?::\s*(?:\*\*|__)?|(?:\*\*|__)?\s*$)\s*",
    re.IGNORECASE,
)
_ANSWER_LABEL = re.compile(
    r"^\s*(?:[#>]+\s*)?(?:\*\*|__)?\s*(?:answer|response|output)\s*(?:\*\*|__)?\s*(?::|$)",
    re.IGNORECASE,
)
_LEAD_IN = re.compile(
    r"^(?:(?:sure|certainly|of course|absolutely|okay|ok|alright|great)\b"
    r"|here(?:'s| is| are)\b|(?:a|one|the) (?:\w+ ){0,3}(?:instructions?|requests?|questions?"
    r"|prompts?)\b.*:$|.*\binstruction (?:that|which|for)\b.*:$)",
    re.IGNORECASE,
)
_ABOUT_IT = re.compile(
    r"^(?:this|the above|that) (?:\w+ ){0,2}(?:instruction|request|question|prompt|task)\b"
    r"|^(?:note|explanation)\s*:",
    re.IGNORECASE,
)
_BULLET = re.compile(r"^\s*(?:[-*+]\s+|\(?\d{1,2}[.)]\s+)")


def parse_request(text: str) -> str | None:
    """The instruction in a backtranslation reply, or None when there is none.

    A chat model's wrapping goes: fences, a lead-in ("Sure! Here is the instruction:"), a label
    ("**Instruction:**", "Request:"), quotes or bold around it, a numbered list of alternatives
    (the first is taken), and remarks after it ("This request asks ..."). What is left must
    still pass the instruction rules: a reply that answers instead of asking is caught there.
    """
    lines = [line.strip() for line in text.strip().splitlines() if not _FENCE.match(line)]
    for i, line in enumerate(lines):
        if label := _REQUEST_LABEL.match(line):
            lines = [line[label.end() :], *lines[i + 1 :]]
            break
    while lines and (not lines[0] or _is_lead_in(lines[0], len(lines))):
        lines.pop(0)
    kept: list[str] = []
    for line in lines:
        stripped = line.lstrip("*_ ")
        if not line or _ANSWER_LABEL.match(line) or _ABOUT_IT.match(stripped):
            break
        if _REMARK.match(stripped) or (kept and _BULLET.match(line)):
            break
        kept.append(_BULLET.sub("", line, count=1))
        if _unwrap(kept[-1]) != kept[-1]:
            break  # a line quoted or bold as a whole is the instruction: what follows is talk
    return clean_item(_unwrap(" ".join(kept).strip())) if kept else None


def _is_lead_in(line: str, left: int) -> bool:
    """An opening line that introduces the payload (followed by it, or ending with ":")."""
    stripped = line.lstrip("*_# ").rstrip("*_ ")
    lead = bool(_LEAD_IN.match(stripped) or _PREAMBLE.match(stripped))
    return lead and (left > 1 or stripped.endswith(":"))


@dataclass(frozen=True)
class Example:
    input: str
    output: str


# Decorations a chat model puts before a label: headings, quotes, bullets, numbering.
_DECOR = r"(?:[#>]+\s*|[-*+]\s+|\(?\d{1,2}[.)]\s+)*"
_EMPH = r"(?:\*\*|__|\*|_)?"
_NAMES = r"input|output|class\s+label|label"
# "Input:", "**Input:**", "**Input**:", "1. Input 2:", "- *Output*: ..."
_FIELD = re.compile(
    rf"^\s*{_DECOR}(?P<e>\*\*|__|\*|_)?\s*(?P<name>{_NAMES})\s*#?\d*\s*"
    r"(?(e)(?:(?P=e)\s*:|:\s*(?P=e))|:)\s*(?P<value>.*)$",
    re.IGNORECASE,
)
# A label standing alone as a heading or in bold, without a colon: "### Output", "**Input**".
_BARE_FIELD = re.compile(
    rf"^\s*(?:#+\s*(?P<h>{_NAMES})|(?P<e>\*\*|__)(?P<b>{_NAMES})\s*#?\d*(?P=e))\s*:?\s*$",
    re.IGNORECASE,
)
# "Example 1", "### Example 2:", "**Example 3**", "Example #4 -", "Instance 5" (a whole line).
_HEADER = re.compile(
    rf"^\s*{_DECOR}{_EMPH}\s*(?:example|instance|sample)\s*#?\s*\d*\s*[:.)-]?\s*{_EMPH}\s*"
    r"[:.)-]?\s*$",
    re.IGNORECASE,
)
_FENCE = re.compile(r"^\s*(?:```|~~~)")
_RULE = re.compile(r"^\s*(?:-{3,}|\*{3,}|_{3,}|={3,})\s*$")  # a horizontal rule
_NEXT_TASK = re.compile(r"^\s*(?:[*_#]+\s*)?task\s*:", re.IGNORECASE)
# What a chat model says before the payload ...
_PREAMBLE = re.compile(
    r"^(?:(?:sure|certainly|of course|absolutely|okay|ok|alright|great)"
    r"(?:!|[,.]?\s+(?:here|i(?:'d|'ll| would| will| can)|let me|below))"
    r"|here(?:'s| is| are) (?:\w+ ){0,3}(?:examples?|instances?|inputs?|outputs?|pairs?|tasks?"
    r"|labels?|samples?)\b"
    r"|below (?:is|are) (?:\w+ ){0,3}(?:examples?|instances?|tasks?)\b)",
    re.IGNORECASE,
)
# ... and after it.
_REMARK = re.compile(
    r"^(?:i hope (?:this|these|that|the above|my|you find)\b|hope (?:this|these|that) helps"
    r"|let me know if\b|feel free to\b|happy to help|is there anything else"
    r"|would you like (?:me|more|another|additional|some)\b|do you want me\b"
    r"|if you(?:'d| would)? (?:like|need|want) (?:more|any|me|additional|further|other)\b"
    r"|i(?:'ve| have) (?:included|provided|created|written|generated|given|tried)\b"
    r"|(?:these|the above|all of these|each of these|this set of) (?:\w+ ){0,2}"
    r"(?:examples?|tasks?|instances?|inputs?|outputs?|pairs?|labels?)\b)",
    re.IGNORECASE,
)
_NO_INPUT = {"", "none", "n/a", "na", "(none)", "no input", "<noinput>", "-", "empty", "null"}
_QUOTES = {'"': '"', "'": "'", "\u201c": "\u201d", "\u2018": "\u2019", "`": "`"}


def parse_examples(text: str, truncated: bool) -> list[Example]:
    """Input-first replies: blocks of an optional "Input:" and an "Output:".

    Blocks open at an "Example N" header or when a field repeats; fields may be numbered
    ("Input 2:") and span lines. Chat wrapping is dropped: text before the first field, fence
    and rule lines, markdown around labels, remarks after an output.
    """
    examples: list[Example] = []
    blocks = _blocks(_lines(text))
    for i, block in enumerate(blocks):
        if "output" in block:
            last = i == len(blocks) - 1
            given = _tidy(block.get("input", ""), last=False)
            output = _tidy(block["output"], last)
            examples.append(Example("" if _is_none(given) else given, output))
    return examples[:-1] if truncated else examples


def parse_labelled(text: str, truncated: bool) -> list[Example]:
    """Output-first replies, read as the method's code reads them: each "Class label:" opens an
    instance whose label is the first line after it (the output) and whose input is the rest of
    the block, whatever its field is called ("Input:", "Review:", none); no input gives "".
    """
    blocks: list[list[str]] = []
    for line in _lines(text):
        field = _field(line)
        if field is not None and field[0] == "label":
            blocks.append([field[1]])
        elif blocks and not _HEADER.match(line):
            blocks[-1].append(line)
    examples = []
    for i, block in enumerate(blocks):
        label, _, rest = "\n".join(block).strip().partition("\n")
        label = _unwrap(_unwrap(label.strip()).rstrip(".").strip())
        for given in _inputs(_tidy(rest, last=i == len(blocks) - 1)) if label else []:
            examples.append(Example("" if _is_none(given) else given, label))
    return examples[:-1] if truncated else examples


def _inputs(block: str) -> list[str]:
    """The inputs under one label: the block, or one per "Input:" field when that repeats."""
    lines = block.split("\n")
    starts = [i for i, line in enumerate(lines) if _opens_input(line)]
    if len(starts) < 2:
        return [_unname(block)]
    bounds = zip(starts, [*starts[1:], len(lines)], strict=True)
    return [_unname(_tidy("\n".join(lines[a:b]), last=False)) for a, b in bounds]


def _opens_input(line: str) -> bool:
    field = _field(line)
    return field is not None and field[0] == "input"


def _lines(text: str) -> list[str]:
    """The reply's lines up to an invented next task, without fence and rule lines."""
    lines = []
    for line in text.splitlines():
        if _NEXT_TASK.match(line):
            break  # a base model that goes on to invent the next task
        if not (_FENCE.match(line) or _RULE.match(line)):
            lines.append(line)
    return lines


def _field(line: str) -> tuple[str, str] | None:
    """(name, value on the same line) when the line opens a field."""
    if m := _FIELD.match(line):
        name, value = m.group("name"), m.group("value")
    elif m := _BARE_FIELD.match(line):
        name, value = m.group("h") or m.group("b"), ""
    else:
        return None
    name = name.lower()
    return ("label" if "label" in name else name), value


def _blocks(lines: list[str]) -> list[dict[str, str]]:
    """Group "Input"/"Output" fields (values may span lines) into one dict per instance."""
    blocks: list[dict[str, list[str]]] = [{}]
    active: list[str] | None = None
    for line in lines:
        if _HEADER.match(line):
            blocks.append({})
            active = None
            continue
        field = _field(line)
        if field is None or field[0] == "label":
            if active is not None:
                active.append(line)
            continue
        name, value = field
        if name in blocks[-1] or (name == "input" and "output" in blocks[-1]):
            blocks.append({})
        active = blocks[-1].setdefault(name, [value])
    return [{k: "\n".join(v) for k, v in b.items()} for b in blocks if b]


def _tidy(text: str, last: bool) -> str:
    """Trim; drop chat remarks after the payload; unwrap a field wrapped whole in bold or quotes.

    A trailing paragraph that is a remark goes everywhere; at the very end of the reply (`last`)
    a remark line goes even without a blank line before it.
    """
    paragraphs = text.strip().split("\n\n")
    while paragraphs and _is_remark(paragraphs[-1]):
        paragraphs.pop()
    lines = "\n\n".join(paragraphs).strip().split("\n")
    while last and lines and _is_remark(lines[-1]):
        lines.pop()
    return _unwrap("\n".join(lines).strip())


def _is_remark(text: str) -> bool:
    text = text.strip().lstrip("*_ ")
    return bool(_REMARK.match(text) or _PREAMBLE.match(text))


def _unwrap(text: str) -> str:
    """Remove bold, italics or quotes that enclose the whole text (and nothing inside)."""
    while len(text) > 2:
        for opener, closer in (("**", "**"), ("__", "__"), *_QUOTES.items()):
            inner = text[len(opener) : -len(closer)]
            wraps = text.startswith(opener) and text.endswith(closer) and inner.strip()
            if wraps and opener not in inner and closer not in inner:
                text = inner.strip()
                break
        else:
            return text
    return text


_NAME = re.compile(rf"^\s*{_EMPH}\s*[A-Za-z][A-Za-z ]{{0,24}}?\s*#?\d*\s*{_EMPH}\s*:{_EMPH}\s*")


def _unname(text: str) -> str:
    """An input without its field name ("Review: ..."), when that is the block's only field."""
    lines = text.split("\n")
    if _NAME.match(lines[0]) and not any(_NAME.match(line) for line in lines[1:]):
        return _unwrap(_NAME.sub("", text, count=1).strip())
    return text


def _is_none(text: str) -> bool:
    return text.lower().strip(" .") in _NO_INPUT


def chat_residue(text: str) -> str | None:
    """What a chat model left around a payload, if the text still holds it: a fence line, an
    opening preamble or a closing remark (on the last line, after other text)."""
    stripped = text.strip()
    for line in stripped.splitlines():
        if _FENCE.match(line):
            return f"fence line {line.strip()[:20]!r}"
    first = stripped.split("\n", 1)[0].lstrip("*_ ")
    if _PREAMBLE.match(first):
        return f"preamble {first[:40]!r}"
    last = stripped.rsplit("\n", 1)[-1].strip().lstrip("*_ ")
    if last != stripped.lstrip("*_ ") and _REMARK.match(last):
        return f"remark {last[:40]!r}"
    return None
