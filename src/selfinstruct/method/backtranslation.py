"""Instruction backtranslation's pure parts (Li et al. 2023, self-augmentation): the few-shot
examples, the prompt, the segment ids and the rule that an instruction must ask for something.
"""

from __future__ import annotations

import hashlib
import random
import re

from selfinstruct.method.prompts import Template
from selfinstruct.models import SeedTask


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


LONG_ANSWER = 15  # words: seed answers at least this long show the model what an answer is like

# A sentence asks when its first word is a question word, an auxiliary, a request verb or the
# user speaking ("I need ..."); after a comma ("Using these notes, explain ...") a request verb
# only. Everyday action verbs (fill, put, turn, use) are left out: how-to answers start with them.
_REQUEST_VERBS = _words(
    """help tell explain describe write list give provide suggest outline compare contrast
    create draft compose rewrite translate classify identify name define show recommend propose
    plan design make find calculate convert generate prepare teach clarify advise share review
    evaluate analyze analyse predict estimate choose decide determine check edit improve shorten
    expand simplify paraphrase rephrase summarize summarise answer brainstorm discuss illustrate
    argue persuade convince rank rate solve prove derive justify assess critique imagine pretend
    suppose assume consider walk please"""
)
_OPENERS = _REQUEST_VERBS | _words(
    """how what why when where which who whom whose is are am was were do does did can could
    would will should shall may might must i i'm i've i'd i'll my we we're our using given
    based"""
)
_SENTENCES = re.compile(r"(?<=[.!?:;])\s+")
_CLAUSES = re.compile(r",\s*")
_WORD = re.compile(r"[a-z']+")


def segment_id(file: str, record: int | None, offset: int, text: str) -> str:
    """Stable across runs: where the segment is (file, record, offset) and what it says, so an
    edited text is new work and an unchanged one is skipped."""
    key = f"{file}\0{record}\0{offset}\0{text}"
    return f"s-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def example_seeds(seeds: list[SeedTask]) -> list[SeedTask]:
    """Seeds that show an answer without an input (as a backtranslated pair has none), long
    ones first choice; any seed when there are none such."""
    no_input = [s for s in seeds if not s.instances[0].input.strip()]
    long = [s for s in no_input if len(s.instances[0].output.split()) >= LONG_ANSWER]
    return long or no_input or seeds


def build_prompt(
    template: Template, pool: list[SeedTask], answer: str, k: int, rng: random.Random
) -> str:
    """The template with `k` seed pairs (answer first, then its instruction) and the answer."""
    shown = rng.sample(pool, min(k, len(pool)))
    blocks = [
        f"Answer:\n{s.instances[0].output.strip()}\nInstruction: {s.instruction}" for s in shown
    ]
    return template.render(examples="\n\n".join(blocks), answer=answer.strip())


def not_a_request(text: str) -> tuple[str, str] | None:
    """("not_a_request", why) when no sentence asks: a reply that answers or describes the text
    instead of writing the instruction ("The passage explains that ...")."""
    if "?" in text:
        return None
    for sentence in _SENTENCES.split(text):
        first, *rest = _CLAUSES.split(sentence.lower())
        if _opens(first, _OPENERS) or any(_opens(clause, _REQUEST_VERBS) for clause in rest):
            return None
    return ("not_a_request", "no question and no request: an answer or a description")


def _opens(clause: str, words: frozenset[str]) -> bool:
    found = _WORD.findall(clause)
    return bool(found) and found[0] in words
