"""Yield warnings: one line when a stage's yield looks wrong, naming the likely cause and a fix.

A weak model, or a model asked through the wrong API, does not crash the pipeline: it answers
in another format (nothing parses), calls everything (or nothing) a classification, or repeats
the examples. These checks tell the user so, once enough replies were seen to judge.
"""

from __future__ import annotations

from collections.abc import Mapping

MIN_SEEN = 10  # fewer replies than this say little about a model
PARSED_MIN = 0.5  # of the replies that parsed into candidates or instances
CLASSIFICATION_MAX, CLASSIFICATION_MIN = 0.70, 0.03
ACCEPTED_MIN = 0.10  # of stage 1's candidates


def causes(api: str, cut: int, seen: int, table: str) -> str:
    """The likely causes of replies that do not parse, and what to try."""
    if cut * 2 >= seen:
        return (
            f"{cut} of {seen} replies hit max_tokens: raise `max_tokens` under [{table}] in "
            "selfinstruct.toml"
        )
    other = "completions for a base model" if api == "chat" else "chat for an instruct model"
    return (
        f"the model may be too weak for the few-shot prompt, or the API mode wrong (--api {api}; "
        f"try --api {other}), or try a larger model (--gguf)"
    )


def generate_warnings(
    replies: int, parsed: int, cut: int, candidates: int, accepted: int, api: str
) -> list[str]:
    out = []
    if replies >= MIN_SEEN and parsed < PARSED_MIN * replies:
        out.append(
            f"generate: only {parsed} of {replies} replies held numbered instructions - "
            + causes(api, cut, replies, "generate")
        )
    if candidates >= MIN_SEEN and accepted < ACCEPTED_MIN * candidates:
        out.append(
            f"generate: only {accepted} of {candidates} candidates accepted (under 10%) - the "
            "model repeats the examples or itself (see rejected_instructions.jsonl): try a larger "
            "model, or a higher [generate] temperature"
        )
    return out


def classify_warnings(counts: Mapping[str, int], api: str) -> list[str]:
    yes, no, unparsed = counts.get("yes", 0), counts.get("no", 0), counts.get("unparsed", 0)
    out = []
    if yes + no + unparsed >= MIN_SEEN and unparsed > (1 - PARSED_MIN) * (yes + no + unparsed):
        out.append(
            f"classify: {unparsed} of {yes + no + unparsed} answers were not Yes or No - "
            + causes(api, 0, yes + no + unparsed, "classify")
        )
    if yes + no >= MIN_SEEN:
        share = yes / (yes + no)
        if share > CLASSIFICATION_MAX or share < CLASSIFICATION_MIN:
            out.append(
                f"classify: {share:.0%} of the instructions called classification tasks (expected "
                f"{CLASSIFICATION_MIN:.0%}-{CLASSIFICATION_MAX:.0%}) - the model answers "
                f"{'Yes' if share > CLASSIFICATION_MAX else 'No'} whatever the task: "
                + causes(api, 0, 1, "classify")
            )
    return out


def instances_warnings(counts: Mapping[str, int], api: str) -> list[str]:
    """Per prompt: output-first (classification tasks) and input-first fail differently."""
    out = []
    for kind in ("output_first", "input_first"):
        seen, empty = counts.get(kind, 0), counts.get(f"{kind}_empty", 0)
        if seen >= MIN_SEEN and seen - empty < PARSED_MIN * seen:
            out.append(
                f"instances: only {seen - empty} of {seen} {kind.replace('_', '-')} replies held "
                "instances - " + causes(api, counts.get(f"{kind}_cut", 0), seen, "instances")
            )
    return out


def backtranslate_warnings(
    counts: Mapping[str, int], rejected: Mapping[str, int], api: str
) -> list[str]:
    """Replies that held no instruction, or instructions that the rules turn away."""
    answered = counts.get("accepted", 0) + sum(rejected.values())
    cut, accepted = rejected.get("cut", 0), counts.get("accepted", 0)
    unusable = rejected.get("unparsed", 0) + cut
    if answered < MIN_SEEN:
        return []
    if unusable > (1 - PARSED_MIN) * answered:
        return [
            f"backtranslate: {unusable} of {answered} replies held no whole instruction - "
            + causes(api, cut, answered, "backtranslate")
        ]
    if accepted < ACCEPTED_MIN * answered:
        reason, n = max(rejected.items(), key=lambda item: item[1])
        return [
            f"backtranslate: only {accepted} of {answered} segments got an instruction that "
            f"passed the rules (most often {reason}: {n}; see backtranslate_rejects.jsonl) - "
            "try a larger model, or a higher [backtranslate] temperature"
        ]
    return []


PAIRS_MIN = 0.25  # of the prompts `preferences` asked about: below, the judge tells too little


def preference_warnings(outcomes: Mapping[str, int], unscored_answers: int) -> list[str]:
    """`preferences`: most prompts without a pair (the judge scores all candidates alike, or
    gives no score) say more about the judge than the data."""
    prompts = sum(outcomes.values())
    pairs = outcomes.get("pair", 0)
    if prompts < MIN_SEEN or pairs >= PAIRS_MIN * prompts:
        return []
    ties = outcomes.get("tie", 0) + outcomes.get("margin", 0)
    why = (
        f"{ties} had candidates scored alike or too close: try more --candidates, a higher "
        "--temperature or a stronger --judge-model"
        if ties >= outcomes.get("unscored", 0)
        else f"{unscored_answers} answers got no score: the judge likely ignores the rubric's "
        "format; try a stronger --judge-model"
    )
    return [f"preferences: only {pairs} of {prompts} prompts gave a pair - {why}"]
