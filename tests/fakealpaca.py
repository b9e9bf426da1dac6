"""The fake server's Alpaca layout and its teacher (hooked into fakeserver.default_reply).

An Alpaca prompt (numbered "Instruction:" / "Input:" / "Output:" blocks between "###" lines,
ending at "N. Instruction:") is answered with whole tasks from N on, numbered past the request's
stop ("\\n20.") so that the stop sequence is what ends the list, as with the real model; about
40% of the tasks have an input, the rest "<noinput>". `ChattyAlpaca` (a `reply=`) writes the same
tasks the way chat models bend the layout, and records every task it meant.

A request to a model whose name starts with "teacher", or one with a system message, is a
distillation request: the answer is a function of the model, the system prompt and the user
turn only, so tests can predict it (`teacher_answer`).
"""

from __future__ import annotations

import random
import re
import threading
from typing import Any

from tests.fakecorpus import make_instruction, seed_of, sentence

_ALPACA_END = re.compile(r"(?:^|\n)(\d+)\.\s*Instruction:\s*$")
NO_INPUT = "<noinput>"
Task = tuple[str, str, str]  # instruction, input ("" for none), output


def alpaca_start(prompt: str) -> int | None:
    """The number an Alpaca prompt asks to continue from, None for any other prompt."""
    if "###" not in prompt:
        return None
    match = _ALPACA_END.search(prompt.rstrip())
    return int(match.group(1)) if match else None


def make_task(rng: random.Random) -> Task:
    given = sentence(rng) if rng.random() < 0.4 else ""
    return make_instruction(rng), given, f"{sentence(rng)} {sentence(rng)}"


def plain(n: int, task: Task) -> str:
    instruction, given, output = task
    return (
        f"{n}. Instruction: {instruction}\n{n}. Input:\n{given or NO_INPUT}\n"
        f"{n}. Output:\n{output}\n###\n"
    )


def alpaca_reply(prompt: str, chat: bool, rng: random.Random, upto: int = 22) -> str | None:
    """Whole tasks from the prompt's open number to `upto` (the stop cuts the list at 20)."""
    start = alpaca_start(prompt)
    if start is None:
        return None
    text = "".join(plain(n, make_task(rng)) for n in range(start, upto + 1))
    lead = f"{start}. Instruction:"
    return text if chat else text.removeprefix(lead)


def is_teacher(body: dict[str, Any]) -> bool:
    messages = body.get("messages") or []
    system = any(m.get("role") == "system" for m in messages)
    return "messages" in body and (system or str(body.get("model", "")).startswith("teacher"))


def teacher_answer(model: str, system: str | None, user: str) -> str:
    """What the fake teacher answers: the same words for the same question, every time."""
    rng = random.Random(seed_of(model, system, user))
    return f"[{model}] {sentence(rng)} {sentence(rng)}"


def teacher_reply(body: dict[str, Any]) -> str:
    messages = body.get("messages") or []
    system = next((str(m["content"]) for m in messages if m.get("role") == "system"), None)
    user = next((str(m["content"]) for m in reversed(messages) if m.get("role") == "user"), "")
    return teacher_answer(str(body.get("model", "")), system, user)


# ---------------------------------------------------------------------------
# Chat wrapping of the layout


def _bold(n: int, task: Task, rng: random.Random) -> str:
    instruction, given, output = task
    return (
        f"**{n}. Instruction:** {instruction}\n**{n}. Input:** {given or NO_INPUT}\n"
        f"**{n}. Output:** {output}\n\n---\n\n"
    )


def _headings(n: int, task: Task, rng: random.Random) -> str:
    instruction, given, output = task
    shown = given or rng.choice((NO_INPUT, "None", "N/A"))
    fields = f"**Instruction:** {instruction}\n**Input:**\n{shown}\n**Output:**\n{output}"
    return f"### Task {n}\n{fields}\n\n"


def _unnumbered(n: int, task: Task, rng: random.Random) -> str:
    instruction, given, output = task
    field = f"Input: {given}\n" if given else rng.choice(("", f"Input: {NO_INPUT}\n"))
    return f"Instruction: {instruction}\n{field}Output: {output}\n###\n"


def _plain(n: int, task: Task, rng: random.Random) -> str:
    return plain(n, task)


STYLES = (_bold, _headings, _unnumbered, _plain)
PREAMBLES = ("Sure! Here are the new tasks:", "Here are 16 more tasks in the same layout:", "")
REMARKS = (
    "I hope these tasks help! Let me know if you need more.",
    "Let me know if you would like more tasks.",
    "",
)


class ChattyAlpaca:
    """A `reply=` that answers Alpaca prompts as chat models do (the layout bent in one of
    several ways per reply: markdown, headings, no numbers, a fence, the first instruction
    without its label, a preamble and a closing remark) and everything else as the toy model."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.meant: list[Task] = []

    def __call__(self, body: dict[str, Any]) -> str:
        from tests.fakeserver import default_reply, prompt_text

        start = alpaca_start(prompt_text(body))
        if start is None or "messages" not in body:
            with self.lock:
                salt = self.rng.randrange(2**31)
            return default_reply(body, salt=salt)
        with self.lock:
            return self.reply(start)

    def reply(self, start: int) -> str:
        rng = self.rng
        style = rng.choice(STYLES)
        tasks = [make_task(rng) for _ in range(start, 20)]
        self.meant += tasks
        body = "".join(style(n, task, rng) for n, task in zip(range(start, 20), tasks, strict=True))
        if style is _plain and rng.random() < 0.5:  # it goes on right after "4. Instruction:"
            body = body.removeprefix(f"{start}. Instruction:").lstrip()
        elif rng.random() < 0.3:
            body = f"```\n{body}```\n"
        return "\n\n".join(p for p in (rng.choice(PREAMBLES), body, rng.choice(REMARKS)) if p)
