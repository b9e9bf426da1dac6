"""The fake server's answers to the evolve prompts (prompts/evolve_*.txt), deterministic.

The operation is read from the prompt's title line and the instruction from its "Instruction:"
line. Most replies are a rewrite that each operation shapes its own way (predictable from the
instruction: `rewrite`); by the instruction's hash a few are a copy, a refusal, an answer
instead of an instruction, or a rewrite wrapped the way chat models wrap replies (`outcome`).
An instruction holding "[copy]", "[refuse]", "[answer]", "[chatty]" or "[rewrite]" gets that
outcome whatever its hash, for tests.
"""

from __future__ import annotations

import random
import re

from tests.fakecorpus import make_instruction, seed_of, sentence

TITLES = {
    "# Adding constraints": "constraints",
    "# Deepening": "deepen",
    "# Making it concrete": "concretize",
    "# A rarer task in the same domain": "breadth",
    "# Raising the difficulty": "harder",
}
_INSTRUCTION = re.compile(r"^Instruction: (.*?)\nRewritten instruction:", re.DOTALL | re.MULTILINE)
OUTCOMES = ("copy", "refuse", "answer", "chatty")

_AUDIENCES = ("a retired engineer", "two twelve-year-olds", "a busy hospital nurse", "new hires")
_LIMITS = ("under 120 words", "exactly five bullet points", "two short paragraphs", "one table")
_TONES = ("a warm, plain tone", "a formal register", "no jargon at all", "British spelling")
_CASES = (
    "Ravenna's night bus service in February",
    "a bakery in Osaka with four employees",
    "the 1998 Sydney to Hobart yacht race",
    "a Lisbon tram driver on her first shift",
)


def operation(prompt: str) -> str | None:
    """The evolve operation a prompt asks for, or None for any other prompt."""
    first = prompt.lstrip().split("\n", 1)[0].strip()
    return TITLES.get(first)


def instruction(prompt: str) -> str:
    found = _INSTRUCTION.search(prompt)
    return found.group(1).strip() if found else ""


def outcome(text: str) -> str:
    """What the fake model does with this instruction: rewrite (most), or one of OUTCOMES."""
    for name in ("rewrite", *OUTCOMES):
        if f"[{name}]" in text:
            return name
    draw = seed_of("evolve", text) % 100
    if draw < 4:
        return "copy"
    if draw < 7:
        return "refuse"
    if draw < 10:
        return "answer"
    if draw < 25:
        return "chatty"
    return "rewrite"


def rewrite(op: str, text: str) -> str:
    """The predictable rewrite of `text` by `op` (new words outweigh the old, so it is novel)."""
    rng = random.Random(seed_of("rewrite", op, text))
    base = text.replace("[rewrite]", "").replace("[chatty]", "").strip().rstrip(".?!")
    extra = ", and ".join(sentence(rng).rstrip(".").lower() for _ in range(_sentences(base)))
    if op == "constraints":
        return (
            f"{base}, written for {rng.choice(_AUDIENCES)} in {rng.choice(_LIMITS)} "
            f"and {rng.choice(_TONES)}; mention that {extra}."
        )
    if op == "deepen":
        return f"{base}, then explain step by step the reasoning behind it, given that {extra}."
    if op == "concretize":
        return f"{base}, using the specific case of {rng.choice(_CASES)}, where {extra}."
    if op == "harder":
        return (
            f"{base}, and also handle the hardest exception to it, justifying each choice "
            f"against an alternative, knowing that {extra}."
        )
    return make_instruction(rng, bad_rate=0.0)  # breadth: a new task, not a rewrite


def _sentences(base: str) -> int:
    """Enough added sentences that ROUGE-L with the parent stays under 0.7."""
    return max(1, len(base.split()) // 10)


def reply(prompt: str, *, chat: bool) -> str | None:
    """The fake model's reply to an evolve prompt, or None when `prompt` is not one."""
    op = operation(prompt)
    if op is None:
        return None
    text = instruction(prompt)
    kind = outcome(text)
    if kind == "copy":
        return f" {text}" if not chat else text
    if kind == "refuse":
        return "I'm sorry, but I can't help with rewriting this instruction."
    if kind == "answer":
        rng = random.Random(seed_of("answer", text))
        return f"Sure! Here is the answer:\n\n{sentence(rng)} {sentence(rng)}"
    new = rewrite(op, text)
    if kind == "chatty" and chat:
        lead, remark = "Sure! Here's the rewritten instruction:", "Let me know if you want more."
        return f"{lead}\n\n**{new}**\n\n{remark}"
    return new if chat else f" {new}"
