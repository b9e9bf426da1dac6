"""Segmenting texts for backtranslation: exact segments, offsets and skips."""

from __future__ import annotations

from pathlib import Path

from selfinstruct.config import BacktranslateSettings
from selfinstruct.method.segments import Segment, segments
from selfinstruct.stages.backtranslate import plan

CORPUS = Path(__file__).parent / "fixtures" / "corpus"


def words(n: int, word: str = "word") -> str:
    return " ".join([word] * (n - 1) + [word + "."])


def test_paragraphs_are_packed_up_to_max_words() -> None:
    a, b, c = words(4, "alpha"), words(4, "beta"), words(4, "gamma")
    text = f"{a}\n\n{b}\n\n{c}\n"
    assert segments(text, min_words=3, max_words=8) == [
        Segment(0, f"{a}\n\n{b}", 8),
        Segment(len(a) + len(b) + 4, c, 4),
    ]


def test_a_long_paragraph_and_a_short_leftover_are_skipped_with_their_reason() -> None:
    long, ok, short = words(12, "long"), words(6, "fine"), words(2, "tiny")
    text = f"{ok}\n\n{long}\n\n{short}"
    assert segments(text, min_words=3, max_words=10) == [
        Segment(0, ok, 6),
        Segment(len(ok) + 2, long, 12, "too_long"),
        Segment(len(ok) + len(long) + 4, short, 2, "too_short"),
    ]


def test_lines_of_one_paragraph_stay_together_and_offsets_point_into_the_text() -> None:
    text = "\n\n  First line of it\ncontinues here.   \n\nSecond one here, ending.\n"
    found = segments(text, min_words=1, max_words=100)
    assert found == [
        Segment(2, "  First line of it\ncontinues here.\n\nSecond one here, ending.", 10)
    ]
    assert text[found[0].offset :].startswith("  First line")


MARKDOWN = """---
title: front matter is not answer text
---

# Title

Intro paragraph under the title.

Setext heading
--------------

Under the setext heading.

<!-- a comment -->
Still this section, after the comment.

***

After a rule:

```sh
make install
```

Then it works.

**A bold title**

Last section.
"""


def test_markdown_headings_rules_front_matter_and_code() -> None:
    found = segments(MARKDOWN, min_words=1, max_words=100)
    assert [(s.text, s.words) for s in found] == [
        ("Intro paragraph under the title.", 5),
        ("Under the setext heading.\n\nStill this section, after the comment.", 10),
        ("After a rule:\n\n    make install\n\nThen it works.", 8),
        ("Last section.", 2),
    ]
    for s in found:
        assert MARKDOWN[s.offset :].startswith(s.text.split()[0])


def test_a_heading_ends_a_segment_even_below_max_words() -> None:
    text = "# A\n\nOne two three four.\n\n## B\n\nFive six seven eight.\n"
    found = segments(text, min_words=1, max_words=100)
    assert [s.text for s in found] == ["One two three four.", "Five six seven eight."]


def test_plain_text_keeps_hash_lines_but_splits_at_title_lines() -> None:
    text = "# not a heading in a .txt file, just text.\n\nA title line\n\nBody of the part.\n"
    found = segments(text, min_words=1, max_words=100, markdown=False)
    assert [s.text for s in found] == [
        "# not a heading in a .txt file, just text.",
        "Body of the part.",
    ]


def test_an_unclosed_fence_runs_to_the_end_and_no_fence_line_is_left() -> None:
    text = "Run this:\n\n```\nstep one\n\nstep two\n"
    [found] = segments(text, min_words=1, max_words=100)
    assert found.text == "Run this:\n\n    step one\n\n    step two"
    assert "```" not in found.text


def test_the_corpus_segments() -> None:
    pieces, report = plan(CORPUS, BacktranslateSettings())
    assert (report.texts, report.segments, dict(report.skipped)) == (5, 23, {"too_short": 1})
    assert len(pieces) == 22 and len({p.id for p in pieces}) == 22
    assert all(30 <= len(p.text.split()) <= 300 for p in pieces)
    for p in pieces:  # the source points at the segment's start (or the fence before it)
        text = Path(p.source.file).read_text()
        assert text[p.source.offset :].lstrip("`\n").startswith(p.text.split()[0])
    again, _ = plan(CORPUS, BacktranslateSettings())
    assert [p.id for p in again] == [p.id for p in pieces]
