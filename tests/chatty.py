"""A chat model's habits, for the fake server: replies wrapped the way chat models wrap them.

`Chatty` answers the pipeline's prompts like the fake's toy model, but its chat replies come
with preambles, code fences (with and without a language tag), markdown labels and headings,
"Example N:" labels, numbered examples, quotes around fields, other field names, label-only
instances and closing remarks, one style per reply or a mix within one. It records every
(input, output) it meant to give, so that a test can hold the dataset to them.
"""

from __future__ import annotations

import itertools
import random
import re
import threading
from collections.abc import Callable
from typing import Any

from tests.fakecorpus import input_output_pairs, labelled_pairs, seed_of
from tests.fakeserver import classification_answer, default_reply, next_number, prompt_text

FENCE = "```"
PREAMBLES = (
    "Sure! Here are some examples for this task:",
    "Certainly! Here are a few examples.",
    "Here are some examples...",
    "Of course! Below are examples for the task.",
    "Absolutely, here are the instances you asked for:",
)
REMARKS = (
    "These tasks cover a range of skills.",
    "I hope these examples help! Let me know if you need more.",
    "Let me know if you would like more examples.",
    "Feel free to ask for more.",
    "These examples show the task with different inputs.",
    "I've included examples of different kinds.",
)
Pairs = list[tuple[str, str]]
Render = Callable[[Pairs, random.Random], str]


def _quote(text: str, rng: random.Random) -> str:
    return rng.choice(('"{}"', "\u201c{}\u201d", "**{}**", "{}")).format(text)


def _io_plain(i: int, given: str, output: str, rng: random.Random) -> str:
    line = f"Input: {given}\n" if given else rng.choice(("Input: None\n", "", "Input: N/A\n"))
    return f"Example {i}\n{line}Output: {output}"


def _io_bold(i: int, given: str, output: str, rng: random.Random) -> str:
    line = f"**Input:** {given}\n" if given else "**Input:** None\n"
    return f"**Example {i}:**\n{line}**Output:** {output}"


def _io_headings(i: int, given: str, output: str, rng: random.Random) -> str:
    line = f"#### Input\n{given}\n" if given else ""
    return f"### Example {i}\n{line}#### Output\n{output}"


def _io_quoted(i: int, given: str, output: str, rng: random.Random) -> str:
    line = f"Input {i}: {_quote(given, rng)}\n" if given else ""
    return f"Example {i}:\n{line}Output {i}: {_quote(output, rng)}"


def _io_numbered(i: int, given: str, output: str, rng: random.Random) -> str:
    line = f"{i}. Input: {given}\n   " if given else f"{i}. "
    return f"{line}Output: {output}"


def _io_fenced(i: int, given: str, output: str, rng: random.Random) -> str:
    tag = rng.choice(("", "text", "markdown"))
    return f"{FENCE}{tag}\n{_io_plain(i, given, output, rng)}\n{FENCE}"


IO_STYLES = (_io_plain, _io_bold, _io_headings, _io_quoted, _io_numbered, _io_fenced)


def _label_plain(i: int, given: str, label: str, rng: random.Random) -> str:
    name = rng.choice(("Input", "Sentence", "Review", "Text", ""))
    line = f"\n{name}: {given}" if name else f"\n{given}"
    return f"Class label: {label}{line if given else ''}"


def _label_bold(i: int, given: str, label: str, rng: random.Random) -> str:
    return f"**Class label:** {_quote(label, rng)}" + (f"\n**Input:** {given}" if given else "")


def _label_headed(i: int, given: str, label: str, rng: random.Random) -> str:
    return f"### Example {i}\n" + _label_plain(i, given, label, rng)


def _label_numbered(i: int, given: str, label: str, rng: random.Random) -> str:
    return f"{i}. Class label: {label}" + (f"\n   Input: {_quote(given, rng)}" if given else "")


def _label_fenced(i: int, given: str, label: str, rng: random.Random) -> str:
    return f"{FENCE}\n{_label_plain(i, given, label, rng)}\n{FENCE}"


LABEL_STYLES = (_label_plain, _label_bold, _label_headed, _label_numbered, _label_fenced)


def wrap(body: str, rng: random.Random) -> str:
    """A preamble, a closing remark, both or neither (after a blank line or not)."""
    if rng.random() < 0.6:
        body = f"{rng.choice(PREAMBLES)}\n\n{body}"
    if rng.random() < 0.6:
        body += rng.choice(("\n\n", "\n")) + rng.choice(REMARKS)
    return body


def render(pairs: Pairs, styles: tuple[Callable[..., str], ...], rng: random.Random) -> str:
    """One style for the whole reply, or (one time in four) a style per instance."""
    mixed, style = rng.random() < 0.25, rng.choice(styles)
    parts = [
        (rng.choice(styles) if mixed else style)(i, *pair, rng) for i, pair in enumerate(pairs, 1)
    ]
    return wrap("\n\n".join(parts), rng)


class Chatty:
    """A `reply=` for FakeOpenAI: chat replies wrapped as chat models wrap them."""

    def __init__(self, label_only: float = 0.1, no_input: float = 0.3) -> None:
        self.label_only, self.no_input = label_only, no_input
        self.payloads: set[tuple[str, str]] = set()  # every (input, output) meant
        self._lock = threading.Lock()
        self._count = itertools.count()

    def __call__(self, body: dict[str, Any]) -> str:
        salt = next(self._count)
        if "messages" not in body:
            return default_reply(body, salt)
        prompt = prompt_text(body)
        rng = random.Random(seed_of(body, salt))
        if "Is it classification?" in prompt:
            answer = classification_answer(prompt, chat=True)
            return rng.choice(("{}", "**{}**", "{}.", "The answer is: {}")).format(answer)
        if "Class label:" in prompt:
            pairs = [
                ("" if rng.random() < self.label_only else given, label)
                for given, label in labelled_pairs(prompt, rng)
            ]
            return self._meant(pairs, LABEL_STYLES, rng)
        if "Input:" in prompt and "Output:" in prompt:
            pairs = [
                ("" if rng.random() < self.no_input else given, output)
                for given, output in input_output_pairs(rng)
            ]
            return self._meant(pairs, IO_STYLES, rng)
        if next_number(prompt)[0] > 1:
            listing = default_reply(body, salt)
            return wrap(f"{FENCE}\n{listing}\n{FENCE}" if rng.random() < 0.2 else listing, rng)
        return default_reply(body, salt)

    def _meant(
        self, pairs: Pairs, styles: tuple[Callable[..., str], ...], rng: random.Random
    ) -> str:
        with self._lock:
            self.payloads.update(pairs)
        return render(pairs, styles, rng)


WRAPPING = re.compile(
    r"```|~~~|\*\*|^#|\bExample \d|\b(?:Input|Output|Class label|Sentence|Review|Text)\s*\d*:"
    r"|^\d+\.\s|^[\"\u201c]|[\"\u201d]$",
    re.IGNORECASE | re.MULTILINE,
)


def residue(record: dict[str, Any]) -> list[str]:
    """The wrapping `Chatty` uses that is left in a dataset record: markup, a preamble or a
    remark. The tests' own check, independent of the filter under test."""
    found = []
    for text in (record["instruction"], record["input"], record["output"]):
        found += [m.group() for m in WRAPPING.finditer(text)]
        found += [said for said in PREAMBLES + REMARKS if " ".join(said.split()[:2]) in text]
    return found
