"""Answer-sized segments of a text, for backtranslation: paragraphs packed up to a word window.

A section (the text under one markdown heading) is packed greedily, paragraph by paragraph, up
to `max_words`; a paragraph alone longer than that is skipped as `too_long`, a packed segment
shorter than `min_words` as `too_short`. Headings, titles (a short line alone, without end
punctuation), front matter, HTML comments and horizontal rules are not answer text: they only
end a section. Fenced code becomes indented code (stage 4
reads a fence line as a chat model's residue), so a snippet stays with the words around it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

_HEADING = re.compile(r"^\s{0,3}#{1,6}(?:\s|$)")
_SETEXT = re.compile(r"^\s{0,3}(?:=+|-+)\s*$")
_RULE = re.compile(r"^\s{0,3}(?:(?:-\s*){3,}|(?:\*\s*){3,}|(?:_\s*){3,})$")
_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_COMMENT = re.compile(r"^\s*<!--.*-->\s*$")
TITLE_WORDS = 10


@dataclass(frozen=True)
class Segment:
    """A stretch of text that starts at character `offset`; `skip` names why it is not used."""

    offset: int
    text: str
    words: int
    skip: str | None = None  # "too_short" | "too_long"


@dataclass
class _Paragraph:
    offset: int
    lines: list[str]

    @property
    def text(self) -> str:
        return "\n".join(self.lines).strip("\n")


def segments(text: str, min_words: int, max_words: int, markdown: bool = True) -> list[Segment]:
    """The text's segments in order, the skipped ones included (with their reason)."""
    out: list[Segment] = []
    for section in _titled(_sections(text, markdown)):
        out.extend(_pack(section, min_words, max_words))
    return out


def _lines(text: str) -> Iterator[tuple[int, str]]:
    """(offset, line without its newline) for each line."""
    offset = 0
    for line in text.splitlines(keepends=True):
        yield offset, line.rstrip("\r\n").rstrip()
        offset += len(line)


def _sections(text: str, markdown: bool) -> Iterator[list[_Paragraph]]:
    """Paragraphs grouped by section (markdown headings and rules end a section)."""
    section: list[_Paragraph] = []
    current: _Paragraph | None = None
    lines = _lines(text)
    if markdown:
        lines = _without_front_matter(lines)
    for offset, line in lines:
        if markdown and (fence := _FENCE.match(line)):
            code = _code_block(lines, fence.group(1))
            if current is None:
                current = _Paragraph(offset, [])
                section.append(current)
            current.lines.extend("    " + c if c.strip() else "" for c in code)
            continue
        if not line.strip() or (markdown and _COMMENT.match(line)):
            current = None
            continue
        heading = markdown and (
            _HEADING.match(line)
            or _RULE.match(line)
            or (_SETEXT.match(line) and current is not None and len(current.lines) == 1)
        )
        if heading:
            if _SETEXT.match(line) and current is not None and len(current.lines) == 1:
                section.pop()  # the line above was the heading's text
            if section:
                yield section
            section, current = [], None
            continue
        if current is None:
            current = _Paragraph(offset, [])
            section.append(current)
        current.lines.append(line)
    if section:
        yield section


def _titled(sections: Iterator[list[_Paragraph]]) -> Iterator[list[_Paragraph]]:
    """Split sections at titles: a paragraph of one short line without end punctuation (the
    headings of a plain text file, or bold ones in markdown) starts a section and is dropped."""
    for section in sections:
        part: list[_Paragraph] = []
        for para in section:
            if _is_title(para):
                if part:
                    yield part
                part = []
            else:
                part.append(para)
        if part:
            yield part


def _is_title(para: _Paragraph) -> bool:
    line = para.text.strip().strip("*_").strip()
    if len(para.lines) != 1 or para.lines[0].startswith("    ") or not line:
        return False
    return len(line.split()) <= TITLE_WORDS and line[-1] not in ".!?:;,"


def _without_front_matter(lines: Iterator[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    first = next(lines, None)
    if first is None:
        return
    if first[1].strip() == "---":
        for _, line in lines:
            if line.strip() in ("---", "..."):
                break
    else:
        yield first
    yield from lines


def _code_block(lines: Iterator[tuple[int, str]], fence: str) -> list[str]:
    """The lines of a fenced block up to its closing fence (or the end of the text)."""
    code = []
    for _, line in lines:
        if line.strip().startswith(fence):
            break
        code.append(line)
    return code


def _pack(section: list[_Paragraph], min_words: int, max_words: int) -> Iterator[Segment]:
    group: list[_Paragraph] = []
    words = 0
    for para in section:
        n = len(para.text.split())
        if n > max_words:
            yield from _close(group, words, min_words)
            group, words = [], 0
            yield Segment(para.offset, para.text, n, "too_long")
            continue
        if group and words + n > max_words:
            yield from _close(group, words, min_words)
            group, words = [], 0
        group.append(para)
        words += n
    yield from _close(group, words, min_words)


def _close(group: list[_Paragraph], words: int, min_words: int) -> Iterator[Segment]:
    if group:
        text = "\n\n".join(p.text for p in group)
        yield Segment(group[0].offset, text, words, "too_short" if words < min_words else None)
