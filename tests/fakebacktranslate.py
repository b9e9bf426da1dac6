"""The fake server's answers to backtranslation prompts (prompts/backtranslate.txt).

Each segment gets one kind of reply, fixed by a hash of its text, so a test can predict it:
- "plain", "question": an instruction built from the segment's first words;
- "chatty" (chat only): the same instruction wrapped as chat models wrap it (a preamble, a
  label, quotes, a fence, a closing remark);
- "numbered" (chat only): a numbered list of three candidates, the first one the instruction;
- "generic": "Summarize the main points of this text about X.", a near-duplicate of every other
  generic one, which the ROUGE-L rule must turn away after the first;
- "answer": a reply that describes the answer instead of asking ("The text explains that ...").
"""

from __future__ import annotations

import re

from tests.fakecorpus import seed_of

MARK = "write the request it replies to"
KINDS = ("plain",) * 4 + ("chatty",) * 2 + ("numbered", "generic", "answer", "question")
ACCEPTED_KINDS = ("plain", "question", "chatty", "numbered")
SALT = 43  # gives tests/fixtures/corpus every kind of reply (2 to 8 segments each)
_WORD = re.compile(r"[A-Za-z0-9']+")


def is_backtranslate(prompt: str) -> bool:
    return MARK in prompt


def segment_of(prompt: str) -> str:
    """The answer the prompt asks about: after the last "Answer:" line, before "Instruction:"."""
    tail = prompt.rsplit("\nAnswer:\n", 1)[-1]
    return tail.rsplit("\nInstruction:", 1)[0].strip()


def first_sentence(segment: str) -> str:
    return re.split(r"(?<=[.!?])\s", " ".join(segment.split()), maxsplit=1)[0]


def topic(segment: str) -> str:
    """The first eight words of the segment's first sentence, lowercase."""
    return " ".join(_WORD.findall(first_sentence(segment))[:8]).lower()


def kind_of(segment: str) -> str:
    return KINDS[seed_of("backtranslate", SALT, segment) % len(KINDS)]


def instruction_for(segment: str) -> str:
    """The instruction the reply holds (what the parser must find), by kind."""
    kind = kind_of(segment)
    if kind == "generic":
        return f"Summarize the main points of this text about {topic(segment).split()[-1]}."
    if kind == "answer":
        sentence = first_sentence(segment)
        return f"The text explains that {sentence[0].lower()}{sentence[1:]}"
    if kind == "question":
        return f"What should I know about {topic(segment)}?"
    return f"Explain {topic(segment)}."


def backtranslate_reply(prompt: str, *, chat: bool) -> str:
    segment = segment_of(prompt)
    instruction = instruction_for(segment)
    kind = kind_of(segment)
    if not chat:
        return " " + instruction  # a base model continues after "Instruction:"
    if kind == "chatty":
        return _wrap(instruction, seed_of("wrap", segment))
    if kind == "numbered":
        alt = f"Describe {topic(segment)} in a few sentences."
        return f"1. {instruction}\n2. {alt}\n3. Give an overview of {topic(segment)}."
    return instruction


def _wrap(instruction: str, h: int) -> str:
    styles = (
        "Sure! Here is the instruction:\n\n{}\n\nThis instruction asks for a clear explanation.",
        '**Instruction:** "{}"',
        "```\n{}\n```",
        "Here's a request this answer would satisfy:\n\u201c{}\u201d\n"
        "Let me know if you need another one.",
        "### Instruction\n{}\n\nI hope this helps!",
    )
    return styles[h % len(styles)].format(instruction)
