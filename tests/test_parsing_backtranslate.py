"""Backtranslation replies: the instruction out of a chat model's wrapping, and the request rule."""

from __future__ import annotations

import pytest

from selfinstruct.method.backtranslation import not_a_request
from selfinstruct.method.parsing import parse_request
from selfinstruct.stages.yields import backtranslate_warnings

WANT = "Explain how to descale a kettle."


@pytest.mark.parametrize(
    "reply",
    [
        WANT,
        " " + WANT,  # a completions model continues after "Instruction:"
        f"Sure! Here is the instruction:\n\n{WANT}\n\nThis instruction asks for a practical guide.",
        f'**Instruction:** "{WANT}"',
        f"Instruction: {WANT}",
        f"```\n{WANT}\n```",
        f"```text\nInstruction: {WANT}\n```",
        f"1. {WANT}\n2. How often should I descale?\n3. What is limescale?",
        f"Here's a request this answer would satisfy:\n\u201c{WANT}\u201d\nLet me know!",
        f"### Instruction\n{WANT}\n\nI hope this helps!",
        f"Certainly. A possible instruction:\n- {WANT}",
        f"User request: {WANT}\nAnswer: To descale a kettle, fill it halfway.",
        f"**{WANT}**",
    ],
)
def test_the_instruction_is_found_in_the_wrapping(reply: str) -> None:
    assert parse_request(reply) == WANT


def test_an_instruction_over_two_lines_is_joined() -> None:
    assert parse_request("Explain how to descale\na kettle with vinegar.") == (
        "Explain how to descale a kettle with vinegar."
    )


@pytest.mark.parametrize("reply", ["", "   ", "```\n```", "Sure! Here is the instruction:\n\n"])
def test_nothing_to_parse(reply: str) -> None:
    assert parse_request(reply) is None


@pytest.mark.parametrize(
    ("text", "asks"),
    [
        ("Explain how to descale a kettle.", True),
        ("How do I descale my kettle", True),
        ("My kettle is slow. What is wrong with it?", True),
        ("I need a guide to descaling my kettle.", True),
        ("Using these notes, write a short guide to descaling.", True),
        ("Give me three tips for descaling.", True),
        ("The text explains that limescale builds up on the plate.", False),
        ("Fill the kettle with vinegar. Boil it and rinse twice.", False),
        ("To descale a kettle, fill it halfway with vinegar.", False),
        ("In summary, the kettle needs regular care.", False),
    ],
)
def test_an_instruction_must_ask_for_something(text: str, asks: bool) -> None:
    verdict = not_a_request(text)
    assert (verdict is None) == asks
    if not asks:
        assert verdict == (
            "not_a_request",
            "no question and no request: an answer or a description",
        )


def test_the_yield_warnings() -> None:
    assert backtranslate_warnings({"accepted": 1}, {"unparsed": 8}, "chat") == []  # 9: too few
    [line] = backtranslate_warnings({"accepted": 2}, {"unparsed": 9}, "chat")
    assert line.startswith("backtranslate: 9 of 11 replies held no whole instruction - the model")
    [line] = backtranslate_warnings({}, {"unparsed": 4, "cut": 6}, "chat")
    assert line == (
        "backtranslate: 10 of 10 replies held no whole instruction - 6 of 10 replies hit "
        "max_tokens: raise `max_tokens` under [backtranslate] in selfinstruct.toml"
    )
    [line] = backtranslate_warnings({"accepted": 1}, {"too_similar": 9, "unparsed": 1}, "chat")
    assert line.startswith(
        "backtranslate: only 1 of 11 segments got an instruction that passed the rules (most "
        "often too_similar: 9; see backtranslate_rejects.jsonl)"
    )
    assert backtranslate_warnings({"accepted": 2}, {"too_similar": 9}, "chat") == []
