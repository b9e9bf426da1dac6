"""Parsing of what real models return for stage 1."""

from __future__ import annotations

import pytest

from selfinstruct.method.parsing import clean_item, continuation, parse_numbered

CHAT_REPLY = """Sure! Here are seven new tasks for the list:

9. Suggest three ways to reduce food waste at home.
10) Explain why the sky looks red at sunset
    to a ten-year-old.
**11.** Rewrite the sentence below in the passive voice.
Task 12: Classify the following review as positive or negative.
13 . Give me a packing list for a weekend camping trip.
- 14. Summarize the plot of a famous novel in two sentences.
15. **Compose a haiku about morning coffee.**

Let me know if you want more tasks!
"""


def test_chat_reply_with_preamble_styles_and_closing_remark() -> None:
    assert parse_numbered(CHAT_REPLY, 9, 15, truncated=False) == [
        "Suggest three ways to reduce food waste at home.",
        "Explain why the sky looks red at sunset to a ten-year-old.",
        "Rewrite the sentence below in the passive voice.",
        "Classify the following review as positive or negative.",
        "Give me a packing list for a weekend camping trip.",
        "Summarize the plot of a famous novel in two sentences.",
        "Compose a haiku about morning coffee.",
    ]


def test_completions_continuation_gets_its_number_back() -> None:
    text = continuation(
        " Name two rivers in Africa.\n10. List some fruits rich in iron.", 9, "completions"
    )
    assert parse_numbered(text, 9, 15, truncated=False) == [
        "Name two rivers in Africa.",
        "List some fruits rich in iron.",
    ]
    assert continuation("9. x", 9, "chat") == "9. x"


def test_truncated_reply_drops_only_the_last_item() -> None:
    text = "9. Plan a three-day trip to Rome.\n10. Describe the water cycle.\n11. Explain how vacc"
    assert parse_numbered(text, 9, 15, truncated=True) == [
        "Plan a three-day trip to Rome.",
        "Describe the water cycle.",
    ]
    assert len(parse_numbered(text, 9, 15, truncated=False)) == 3


def test_echoed_examples_code_fences_and_blank_items_are_dropped() -> None:
    text = "```\n7. An old example.\n8. Another one.\n9.\n10. Translate 'good night' to Thai.\n```"
    assert parse_numbered(text, 9, 15, truncated=False) == ["Translate 'good night' to Thai."]


def test_no_numbered_items_gives_nothing() -> None:
    assert parse_numbered("I cannot help with that.", 9, 15, truncated=False) == []
    assert parse_numbered("", 9, 15, truncated=True) == []


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("  instruction:  describe   a cat ", "Describe a cat"),
        ('"Quote this sentence."', "Quote this sentence."),
        ("List the steps:", "List the steps"),
        ("**Bold task here**", "Bold task here"),
        ("   ", None),
        ("Task: ", None),
    ],
)
def test_clean_item(raw: str, cleaned: str | None) -> None:
    assert clean_item(raw) == cleaned


def test_items_beyond_the_ones_asked_for_are_dropped() -> None:
    text = "\n".join(
        f"{n}. Describe the history of bridge number {n} in two lines." for n in range(9, 20)
    )
    items = parse_numbered(text, 9, 15, truncated=False)
    assert [item.split()[-4] for item in items] == [str(n) for n in range(9, 16)]
