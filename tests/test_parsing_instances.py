"""Parsing of stage 2 answers and stage 3 instances, as real models write them."""

from __future__ import annotations

import pytest

from selfinstruct.parsing import Example, parse_examples, parse_labelled, parse_yes_no


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        (" Yes", True),
        ("no", False),
        ("YES.", True),
        ("**No**", False),
        ("Yes, it is a classification task.", True),
        ("No - the output is free text.", False),
        ("Is it classification? Yes", True),
        ("This is not a classification task.", False),
        ("The answer is yes", True),
        ("Maybe", None),
        ("", None),
        ("It could be read either way: yes or no.", None),
    ],
)
def test_yes_no(text: str, answer: bool | None) -> None:
    assert parse_yes_no(text) is answer


INPUT_FIRST_CHAT = """Sure! Here are some examples for this task:

**Example 1**
**Input:** Paragraph: The bridge opened in 1932.
It carried trams until 1958.
**Output:** The bridge, opened in 1932, carried trams until 1958.

Example 2
Input: None
Output: A short summary
over two lines.

I hope these examples help! Let me know if you need more."""


def test_input_first_chat_reply() -> None:
    assert parse_examples(INPUT_FIRST_CHAT, truncated=False) == [
        Example(
            "Paragraph: The bridge opened in 1932.\nIt carried trams until 1958.",
            "The bridge, opened in 1932, carried trams until 1958.",
        ),
        Example("", "A short summary\nover two lines."),
    ]


def test_input_first_without_example_headers_and_without_input() -> None:
    text = "Output: Drink water before you feel thirsty.\n\nTask: Name a fruit.\nOutput: Apple"
    assert parse_examples(text, truncated=False) == [
        Example("", "Drink water before you feel thirsty.")
    ]
    pairs = "Input: 2 + 2\nOutput: 4\nInput: 3 + 5\nOutput: 8\nInput: 7 + 1\nOutput: 8"
    assert [e.input for e in parse_examples(pairs, truncated=False)] == ["2 + 2", "3 + 5", "7 + 1"]


def test_truncated_reply_drops_the_last_instance() -> None:
    text = "Example 1\nInput: a\nOutput: b\n\nExample 2\nInput: c\nOutput: d is cut o"
    assert parse_examples(text, truncated=True) == [Example("a", "b")]


def test_example_without_output_is_dropped() -> None:
    text = "Example 1\nInput: only an input\n\nExample 2\nInput: x\nOutput: y"
    assert parse_examples(text, truncated=False) == [Example("x", "y")]


def test_output_first_reply() -> None:
    text = (
        "Class label: Positive\nInput: I loved it.\n\n"
        "**Class label:** Negative.\nInput: Cold food,\nslow service.\n"
        "Input: Never again.\n\nClass label: Neutral\n\n"
        "Task: something else\nClass label: X\nInput: y"
    )
    assert parse_labelled(text, truncated=False) == [
        Example("I loved it.", "Positive"),
        Example("Cold food,\nslow service.", "Negative"),
        Example("Never again.", "Negative"),
    ]


def test_output_first_truncated() -> None:
    text = "Class label: Yes\nInput: a\n\nClass label: No\nInput: b is cu"
    assert parse_labelled(text, truncated=True) == [Example("a", "Yes")]


def test_nothing_parsable() -> None:
    assert parse_examples("I can't help with that.", truncated=False) == []
    assert parse_labelled("", truncated=False) == []
