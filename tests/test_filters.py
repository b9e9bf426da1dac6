"""The method's instruction filters, in order."""

from __future__ import annotations

import pytest

from selfinstruct.method.filters import InstructionFilter

check = InstructionFilter()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("Tell a joke", "too_short"),
        ("word " * 151, "too_long"),
        ("Describe the image shown below in detail.", "blacklisted_word"),
        ("Summarize the FILES in this folder for me.", "blacklisted_word"),
        ("Give directions to go to the nearest bank.", "blacklisted_word"),
        ("Draw a cat using only ascii characters please.", "blacklisted_word"),
        ("Write a program that sorts a list of numbers.", "write_a_program"),
        ("- Give three tips for better sleep tonight.", "starts_with_punctuation"),
        ("¿Cómo se dice hello en francés, por favor?", "starts_non_ascii"),
    ],
)
def test_rejects_with_reason(text: str, reason: str) -> None:
    verdict = check(text)
    assert verdict is not None and verdict[0] == reason
    assert verdict[1]  # every reason says what it found (the rejects files' `detail`)


@pytest.mark.parametrize(
    "text",
    [
        "Give three tips for better sleep.",
        "Explain the difference between a mapping and a list in Python.",  # 'mapping' is not 'map'
        "Write a poem about programs that never finish.",
        "word " * 150,
        "Profile the following user bio.",  # 'file' only inside a word
    ],
)
def test_keeps(text: str) -> None:
    assert check(text) is None


def test_custom_blacklist_replaces_the_default() -> None:
    custom = InstructionFilter(["video"])
    assert custom("Describe the image shown below in detail.") is None
    assert custom("Summarize the video in three sentences.") == ("blacklisted_word", "video")
