"""The shipped seed tasks (seeds/seed_tasks.jsonl) keep the shape of the paper's set."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import pytest

from selfinstruct.method.filters import InstructionFilter
from selfinstruct.method.similarity import rouge_l
from selfinstruct.models import SeedTask
from selfinstruct.store.pool import load_seeds

SEED_FILE = Path(__file__).parents[1] / "seeds" / "seed_tasks.jsonl"


@pytest.fixture(scope="module")
def seeds() -> list[SeedTask]:
    return load_seeds(SEED_FILE)  # every line validates, or this raises naming it


def has_input(task: SeedTask) -> bool:
    return any(inst.input.strip() for inst in task.instances)


def test_175_tasks_with_stable_ids_and_nonempty_outputs(seeds: list[SeedTask]) -> None:
    assert [s.id for s in seeds] == [f"seed_task_{k}" for k in range(175)]
    assert all(s.is_classification is not None for s in seeds)
    assert all(inst.output.strip() for s in seeds for inst in s.instances)


def test_about_two_thirds_take_an_input_of_realistic_length(seeds: list[SeedTask]) -> None:
    assert 0.6 <= sum(map(has_input, seeds)) / len(seeds) <= 0.75
    inputs = [len(i.input.split()) for s in seeds for i in s.instances if i.input.strip()]
    assert 25 <= sum(inputs) / len(inputs) <= 50  # the paper's seeds: about 35 words


def test_classification_share_and_labels(seeds: list[SeedTask]) -> None:
    labelled = [s for s in seeds if s.is_classification]
    assert 0.15 <= len(labelled) / len(seeds) <= 0.20
    for task in labelled:  # a label the instruction offers, given an input to judge
        assert has_input(task), task.id
        for inst in task.instances:
            assert inst.output.lower() in task.instruction.lower(), task.id


def test_no_two_instructions_are_near_duplicates(seeds: list[SeedTask]) -> None:
    texts = [s.instruction for s in seeds]
    best = max(combinations(texts, 2), key=lambda pair: rouge_l(*pair))
    assert rouge_l(*best) < 0.7, best  # stage 1 rejects a new instruction above 0.7


def test_instructions_open_in_many_ways_and_pass_stage_1_filters(seeds: list[SeedTask]) -> None:
    first_words = {s.instruction.split()[0].lower().strip("\"',.?") for s in seeds}
    assert len(first_words) >= 80
    keep = InstructionFilter()
    assert [(s.id, keep(s.instruction)) for s in seeds if keep(s.instruction)] == []
