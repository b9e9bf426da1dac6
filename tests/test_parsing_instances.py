"""Parsing of stage 2 answers and stage 3 instances, as real models write them."""

from __future__ import annotations

import pytest

from selfinstruct.method.parsing import (
    Example,
    chat_residue,
    parse_examples,
    parse_labelled,
    parse_yes_no,
)


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
        Example("", "Neutral"),
    ]


def test_output_first_truncated() -> None:
    text = "Class label: Yes\nInput: a\n\nClass label: No\nInput: b is cu"
    assert parse_labelled(text, truncated=True) == [Example("a", "Yes")]


def test_nothing_parsable() -> None:
    assert parse_examples("I can't help with that.", truncated=False) == []
    assert parse_labelled("", truncated=False) == []


FENCE = "```"
SURE = "Sure! Here are some examples for this task:\n\n"
HOPE = "\n\nI hope these examples help! Let me know if you need more."

# Input-first replies in the wrappings chat models use, and the exact instances expected.
INPUT_FIRST_CASES = [
    (  # the wrapping reported: a preamble, a fence, a label inside it, a closing fence
        f"Here are some examples...\n\n{FENCE}\nOutput:\n- Start small\n- Keep going\n{FENCE}",
        [Example("", "- Start small\n- Keep going")],
    ),
    (  # a fence with a language tag around each example, and a closing remark
        f"{SURE}{FENCE}text\nInput: a list: 3, 1, 2\nOutput: 1, 2, 3\n{FENCE}\n\n"
        f"{FENCE}text\nInput: 9, 7\nOutput: 7, 9\n{FENCE}\n\nThese tasks cover a range of skills.",
        [Example("a list: 3, 1, 2", "1, 2, 3"), Example("9, 7", "7, 9")],
    ),
    (  # a remark on the line right after the last output, no blank line
        "Example 1\nInput: 2 + 2\nOutput: 4\nHope this helps!",
        [Example("2 + 2", "4")],
    ),
    (  # markdown headings as headers and as bare labels
        "### Example 1\n#### Input\nThe cat sat.\n#### Output\nLe chat s'est assis.\n\n"
        "### Example 2\n#### Input\nGood night.\n#### Output\nBonne nuit.",
        [Example("The cat sat.", "Le chat s'est assis."), Example("Good night.", "Bonne nuit.")],
    ),
    (  # bold and italic labels, "Example N:" labels, numbered fields
        "**Example 1:**\n**Input 1**: red, blue\n*Output 1:* blue, red\n\n"
        "__Example 2__\n_Input 2:_ up, down\n__Output 2__: down, up",
        [Example("red, blue", "blue, red"), Example("up, down", "down, up")],
    ),
    (  # numbered examples without headers
        "1. Input: dog\n   Output: Hund\n2. Input: cat\n   Output: Katze",
        [Example("dog", "Hund"), Example("cat", "Katze")],
    ),
    (  # quotes and bold around whole fields; quotes inside a field stay
        'Input: "The bus was late again."\nOutput: **Negative**\n\n'
        "Input: \u201cI love this caf\u00e9.\u201d\nOutput: 'Positive'\n\n"
        'Input: He said "hi" and left.\nOutput: "Neutral" or "Positive"',
        [
            Example("The bus was late again.", "Negative"),
            Example("I love this caf\u00e9.", "Positive"),
            Example('He said "hi" and left.', '"Neutral" or "Positive"'),
        ],
    ),
    (  # code that is really the input keeps its lines; only the fences go
        f"Example 1\nInput:\n{FENCE}python\ndef add(a, b):\n    return a - b\n{FENCE}\n"
        "Output: The function subtracts instead of adding; use `a + b`.\n\n---\n\n"
        "Here is another example with no input:\n\nExample 2\nOutput: Use a linter.",
        [
            Example(
                "def add(a, b):\n    return a - b",
                "The function subtracts instead of adding; use `a + b`.",
            ),
            Example("", "Use a linter."),
        ],
    ),
    (  # a mix within one reply
        f"Certainly! Here are three examples.\n\n**Example 1**\n{FENCE}\nInput: 5 km\n"
        f"Output: 3.1 miles\n{FENCE}\n\n### Example 2\n- **Input:** 10 km\n- **Output:** 6.2 miles"
        '\n\nExample 3:\nInput: None\nOutput: "A kilometre is 0.62 miles."\n\n'
        "I've included one example without an input.",
        [
            Example("5 km", "3.1 miles"),
            Example("10 km", "6.2 miles"),
            Example("", "A kilometre is 0.62 miles."),
        ],
    ),
]


@pytest.mark.parametrize(("text", "expected"), INPUT_FIRST_CASES)
def test_input_first_wrappings(text: str, expected: list[Example]) -> None:
    assert parse_examples(text, truncated=False) == expected


OUTPUT_FIRST_CASES = [
    (  # field names other than "Input", and none at all
        "Class label: Positive\nReview: The soup was wonderful.\n\n"
        "Class label: Negative\nSentence: The room smelled of smoke.\n\n"
        "Class label: Neutral\nThe hotel has 40 rooms.",
        [
            Example("The soup was wonderful.", "Positive"),
            Example("The room smelled of smoke.", "Negative"),
            Example("The hotel has 40 rooms.", "Neutral"),
        ],
    ),
    (  # a label with no input is kept with an empty one, as the method's code does
        "Class label: Yes\n\nClass label: No\nInput: Meeting notes from Tuesday",
        [Example("", "Yes"), Example("Meeting notes from Tuesday", "No")],
    ),
    (  # an input of several named fields keeps its names
        "Class label: Entailment\nSentence 1: A dog runs.\nSentence 2: An animal moves.",
        [Example("Sentence 1: A dog runs.\nSentence 2: An animal moves.", "Entailment")],
    ),
    (  # chat wrapping: preamble, headings, bold labels, fences, quotes, closing remark
        f'{SURE}### Example 1\n**Class label:** **Spam**\n**Input:** "WIN a FREE cruise!!!"\n\n'
        f"### Example 2\n{FENCE}\nClass label: Not spam\nInput: Lunch at noon?\n{FENCE}"
        f"{HOPE}",
        [Example("WIN a FREE cruise!!!", "Spam"), Example("Lunch at noon?", "Not spam")],
    ),
    (  # the label on the line after its name; a remark after a label-only block
        "Class label:\nFact\nInput: Water boils at 100 C at sea level.\n\n"
        "Class label: Opinion\n\nThese examples cover both labels.",
        [Example("Water boils at 100 C at sea level.", "Fact"), Example("", "Opinion")],
    ),
    (  # numbered instances and multi-line inputs
        "1. Class label: B\n   Input: Which is bigger?\n   A. 2\n   B. 3\n"
        "2. Class label: A\n   Input: Which is smaller?\n   A. 1\n   B. 4",
        [
            Example("Which is bigger?\n   A. 2\n   B. 3", "B"),
            Example("Which is smaller?\n   A. 1\n   B. 4", "A"),
        ],
    ),
]


@pytest.mark.parametrize(("text", "expected"), OUTPUT_FIRST_CASES)
def test_output_first_wrappings(text: str, expected: list[Example]) -> None:
    assert parse_labelled(text, truncated=False) == expected


RESIDUE = [
    (f"{FENCE}\nprint(1)\n{FENCE}", "fence line '```'"),
    (f"- Start small...\n{FENCE}", "fence line '```'"),
    ("~~~python\nx = 1", "fence line '~~~python'"),
    ("Sure! The answer is 4.", "preamble 'Sure! The answer is 4.'"),
    (
        "Certainly, here is the summary: cats sleep.",
        "preamble 'Certainly, here is the summary: cats sle'",
    ),
    (
        "Here are some examples of verbs: run, jump.",
        "preamble 'Here are some examples of verbs: run, ju'",
    ),
    ("Paris.\n\nI hope this helps!", "remark 'I hope this helps!'"),
    (
        "Paris.\nLet me know if you need anything else.",
        "remark 'Let me know if you need anything else.'",
    ),
    ("1, 2, 3\nThese examples cover sorting.", "remark 'These examples cover sorting.'"),
    ("Blue.\n**Feel free to ask for more.**", "remark 'Feel free to ask for more.**'"),
]
CLEAN = [
    "def add(a, b):\n    return a + b",  # code in an input that is really code
    "Here in Lisbon, the trams run until midnight.",  # a sentence that starts with "Here"
    "Here is my address: 12 Elm Street.",
    "Of course, not every bird can fly.",
    "Sure-footed goats climb the cliffs.",
    "I hope you feel better soon.",  # a whole output that is a wish, not a remark
    "Dear Sam,\nThe report is attached below.\nI hope you have a good weekend.\nBest, Ana",
    "Use `print()` to show the value.",
    "",
]


@pytest.mark.parametrize(("text", "found"), RESIDUE)
def test_chat_residue_found(text: str, found: str) -> None:
    assert chat_residue(text) == found


@pytest.mark.parametrize("text", CLEAN)
def test_chat_residue_keeps_ordinary_text(text: str) -> None:
    assert chat_residue(text) is None
