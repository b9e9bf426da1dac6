"""Dataset statistics as in the paper's table and figures: pure functions over pool records.

Leading verbs use a lightweight heuristic, no NLP library: drop leading clauses that open with
"Given", "If", "For", "As", "Acting", "Without", ... up to their comma, skip openers such as
"Please", "Briefly" or "Step by step", and take the first word as the verb. Its object is the
head of the noun phrase after it: skip determiners, pronouns, numbers and common adjectives,
take up to three words until a function word, a stop word or an -ing word, and keep the last
("Write a short cover letter for ..." -> write, letter). There is none when a function word
comes first ("Explain why ...").
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from itertools import dropwhile
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel

from selfinstruct.errors import ConfigError
from selfinstruct.method.similarity import RougeIndex
from selfinstruct.models import (
    Classification,
    Instance,
    InstanceSet,
    MachineInstruction,
    Record,
    SeedTask,
)
from selfinstruct.outputs.diversity import DiversityColumn, pool_diversity
from selfinstruct.outputs.judged import judged, judged_text
from selfinstruct.store.pool import Pool

LENGTH_EDGES = (0, 5, 10, 15, 20, 25, 30, 40, 50, 75, 100, 150, 200, 300)
TOP_VERBS, TOP_OBJECTS = 20, 4


def wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


OPENERS = wordset(
    "please kindly now then also first next finally just so and simply briefly quickly carefully"
)
# Adverbial phrases skipped like an opener word, with or without a comma after them.
OPENER_PHRASES = (("step", "by", "step"), ("one", "by", "one"), ("in", "short"), ("in", "brief"))
# A leading segment that opens with one of these is a clause or a role, not the task's verb:
# "As a chef, ...", "Acting as a tutor, ...", "Without using a calculator, ...".
CLAUSE_OPENERS = wordset(
    """given if for in using based suppose assuming when after with imagine consider as acting
    pretending playing speaking without while before once unless although since"""
)
NOT_OBJECT_WORDS = wordset(
    """a an the this that these those some any each every all both either another such no
    me us him her them you my your our their its his yourself myself one two three four five
    six seven eight nine ten few several many more most other same following given short brief
    new good simple creative detailed funny different possible appropriate suitable main random
    single correct original interesting small large long concise best top"""
)
FUNCTION_WORDS = wordset(
    """why how what which who whom whose when where whether if to of in on at by for from with
    about into as than and or but not it is are was be can could would should will do does
    below above between under over before during through without within across against like
    using up out down off there here provided listed shown mentioned written described"""
)
_SEGMENT = re.compile(r"[,;:.?!\n]")
_TOKEN = re.compile(r"[^\W_][\w'-]*")


class Row(Record):
    """A line of `dataset.jsonl` (stage 4's output)."""

    id: str
    instruction: str
    input: str = ""
    output: str
    is_classification: bool | None = None


class Reject(Record):
    """A line of `filter_rejects.jsonl`."""

    id: str
    rule: str
    instruction: str
    input: str | None = None
    output: str | None = None
    detail: str = ""


class Task(NamedTuple):
    instruction: str
    is_classification: bool | None
    instances: list[Instance]


class Column(BaseModel):
    """One column of the paper's table."""

    instructions: int
    classification: int
    non_classification: int
    unclassified: int
    instances: int
    empty_input: int
    mean_instruction_words: float | None
    mean_input_words: float | None
    mean_output_words: float | None


class Bin(BaseModel):
    """A histogram bin [lo, hi); hi is None for the open last bin."""

    lo: float
    hi: float | None
    count: int


class Rouge(BaseModel):
    instructions: int
    mean: float | None
    bins: list[Bin]


class Verb(BaseModel):
    verb: str
    count: int
    objects: dict[str, int]


class Lengths(BaseModel):
    source: str
    instruction: list[Bin]
    input: list[Bin]
    output: list[Bin]


class Stats(BaseModel):
    """The whole `selfinstruct stats --json` document."""

    pool: str
    seeds: Column
    machine: Column
    dataset: Column | None
    rouge_vs_seeds: Rouge
    verbs: list[Verb]
    lengths: Lengths
    filter_rules: dict[str, int]
    # the machine pool's instructions and stage 3 outputs; with evolved ones, before and after
    diversity: list[DiversityColumn]
    curation: dict[str, Any] | None = None  # outputs/judged.py: curate's scores
    review: dict[str, Any] | None = None  # the last review's table


def words(text: str) -> int:
    return len(text.split())


def mean(values: list[int]) -> float | None:
    return round(sum(values) / len(values), 2) if values else None


def column(tasks: list[Task]) -> Column:
    """Counts and mean word lengths of a set of tasks (the paper's Table 1)."""
    instances = [inst for task in tasks for inst in task.instances]
    flags = Counter(task.is_classification for task in tasks)
    inputs = [words(i.input) for i in instances if i.input.strip()]
    return Column(
        instructions=len(tasks),
        classification=flags[True],
        non_classification=flags[False],
        unclassified=flags[None],
        instances=len(instances),
        empty_input=len(instances) - len(inputs),
        mean_instruction_words=mean([words(task.instruction) for task in tasks]),
        mean_input_words=mean(inputs),
        mean_output_words=mean([words(i.output) for i in instances]),
    )


def histogram(values: Iterable[int], edges: tuple[int, ...] = LENGTH_EDGES) -> list[Bin]:
    """Counts in [edges[k], edges[k+1]) and an open last bin from edges[-1]."""
    counts = [0] * len(edges)
    for value in values:
        counts[max(k for k, edge in enumerate(edges) if value >= edge)] += 1
    his: list[float | None] = [*edges[1:], None]
    return [Bin(lo=lo, hi=hi, count=n) for lo, hi, n in zip(edges, his, counts, strict=True)]


def rouge_vs_seeds(seeds: list[str], instructions: list[str]) -> Rouge:
    """Each instruction's best ROUGE-L F against the seeds, in 0.1 bins (1.0 in the last)."""
    index = RougeIndex()
    index.extend(seeds)
    scores = [index.best_match(text)[0] for text in instructions]
    counts = [0] * 10
    for score in scores:
        counts[min(int(score * 10), 9)] += 1
    bins = [Bin(lo=k / 10, hi=(k + 1) / 10, count=n) for k, n in enumerate(counts)]
    mean_score = round(sum(scores) / len(scores), 4) if scores else None
    return Rouge(instructions=len(scores), mean=mean_score, bins=bins)


def verb_object(instruction: str) -> tuple[str | None, str | None]:
    """The leading verb and its object by the heuristic in the module docstring."""
    tokens = main_clause(instruction)
    if not tokens or not tokens[0][0].isalpha():
        return None, None
    return tokens[0], head_noun(tokens[1:])


def main_clause(instruction: str) -> list[str]:
    """Lower-cased words of the first clause, leading "Given ...," clauses and openers dropped."""
    segments = [skip_openers(_TOKEN.findall(s)) for s in _SEGMENT.split(instruction.lower())]
    segments = [s for s in segments if s]
    while len(segments) > 1 and segments[0][0] in CLAUSE_OPENERS:
        segments.pop(0)
    return segments[0] if segments else []


def skip_openers(tokens: list[str]) -> list[str]:
    """The tokens after any leading opener words and phrases ("Please", "Step by step")."""
    k = 0
    while k < len(tokens):
        phrase = next((p for p in OPENER_PHRASES if tuple(tokens[k : k + len(p)]) == p), ())
        if not phrase and tokens[k] not in OPENERS:
            break
        k += len(phrase) or 1
    return tokens[k:]


def head_noun(tokens: list[str]) -> str | None:
    """The last word of the (up to three-word) noun phrase that starts the tokens, if any."""
    words = list(dropwhile(lambda w: w in NOT_OBJECT_WORDS or w[0].isdigit(), tokens))
    phrase: list[str] = []
    for word in words[:3]:
        if word in NOT_OBJECT_WORDS or word in FUNCTION_WORDS or (phrase and word.endswith("ing")):
            break
        phrase.append(word)
    return phrase[-1] if phrase else None


def verbs(instructions: Iterable[str], top: int = TOP_VERBS, per: int = TOP_OBJECTS) -> list[Verb]:
    """The most frequent leading verbs and, for each, its most frequent objects."""
    counts: Counter[str] = Counter()
    objects: dict[str, Counter[str]] = {}
    for text in instructions:
        verb, obj = verb_object(text)
        if verb is not None:
            counts[verb] += 1
            if obj is not None:
                objects.setdefault(verb, Counter())[obj] += 1
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return [Verb(verb=v, count=n, objects=ranked_counts(objects.get(v), per)) for v, n in ranked]


def ranked_counts(counter: Counter[str] | None, top: int | None = None) -> dict[str, int]:
    """Most frequent first, ties alphabetically: the same order on every run."""
    items = sorted((counter or Counter()).items(), key=lambda kv: (-kv[1], kv[0]))
    return dict(items[:top])


def lengths(tasks: list[Task], source: str) -> Lengths:
    instances = [inst for task in tasks for inst in task.instances]
    return Lengths(
        source=source,
        instruction=histogram(words(task.instruction) for task in tasks),
        input=histogram(words(i.input) for i in instances if i.input.strip()),
        output=histogram(words(i.output) for i in instances),
    )


def dataset_tasks(rows: Iterable[Row]) -> list[Task]:
    """Dataset lines grouped by instruction text, in first-seen order."""
    tasks: dict[str, Task] = {}
    for row in rows:
        task = tasks.setdefault(row.instruction, Task(row.instruction, row.is_classification, []))
        task.instances.append(Instance(input=row.input, output=row.output))
    return list(tasks.values())


def machine_tasks(pool: Pool) -> list[Task]:
    """Machine instructions with their stage 2 flag and stage 3 instances (if any yet)."""
    flags = {c.id: c.is_classification for c in pool.read(pool.classifications, Classification)}
    sets = {s.id: s.instances for s in pool.read(pool.instances, InstanceSet)}
    return [
        Task(rec.instruction, flags.get(rec.id), sets.get(rec.id, []))
        for rec in pool.read(pool.instructions, MachineInstruction)
    ]


def dataset_path(pool: Pool) -> Path:
    return pool.dataset


def read_dataset(pool: Pool) -> Iterator[Row]:
    return pool.read(dataset_path(pool), Row)


def read_rejects(pool: Pool) -> Iterator[Reject]:
    return pool.read(pool.filter_rejects, Reject)


def check_pool(pool: Pool) -> None:
    if not (pool.seeds.exists() or pool.instructions.exists()):
        raise ConfigError(
            f"{pool.root} is not a pool (no seeds.jsonl or instructions.jsonl): "
            "pass --pool DIR, or run `selfinstruct generate` first"
        )


def pool_stats(pool: Pool) -> Stats:
    """Everything `selfinstruct stats` shows, read from the pool's files."""
    check_pool(pool)
    seeds = list(pool.read(pool.seeds, SeedTask))
    machine = machine_tasks(pool)
    evolved = {r.instruction for r in pool.read(pool.instructions, MachineInstruction) if r.parent}
    has_dataset = dataset_path(pool).exists()
    dataset = dataset_tasks(read_dataset(pool)) if has_dataset else None
    rules = Counter(r.rule for r in read_rejects(pool))
    return Stats(
        pool=str(pool.root),
        seeds=column([Task(s.instruction, s.is_classification, s.instances) for s in seeds]),
        machine=column(machine),
        dataset=None if dataset is None else column(dataset),
        rouge_vs_seeds=rouge_vs_seeds(
            [s.instruction for s in seeds], [t.instruction for t in machine]
        ),
        verbs=verbs(t.instruction for t in machine),
        lengths=lengths(machine, "pool") if dataset is None else lengths(dataset, "dataset"),
        filter_rules=ranked_counts(rules),
        diversity=pool_diversity(machine, evolved),
        **judged(pool),
    )


TABLE_ROWS = (
    ("instructions", "instructions"),
    ("  classification", "classification"),
    ("  non-classification", "non_classification"),
    ("  unclassified", "unclassified"),
    ("instances", "instances"),
    ("  with empty input", "empty_input"),
    ("mean words: instruction", "mean_instruction_words"),
    ("  non-empty input", "mean_input_words"),
    ("  output", "mean_output_words"),
)


def cell(value: object) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def grid(rows: list[list[str]], left: tuple[int, ...] = (0,)) -> str:
    """Aligned columns, two spaces apart: text columns left-aligned, numbers right-aligned."""
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            c.ljust(w) if k in left else c.rjust(w)
            for k, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append(("  " + "  ".join(cells)).rstrip())
    return "\n".join(lines)


def bin_label(b: Bin, digits: int = 0) -> str:
    if b.hi is None:
        return f"{b.lo:.{digits}f}+"
    if digits:
        return f"{b.lo:.{digits}f}-{b.hi:.{digits}f}"
    return f"{b.lo:.0f}-{b.hi - 1:.0f}"


def bar(count: int, top: int, width: int = 40) -> str:
    return "#" * (round(count * width / top) if top else 0)


def summary_table(stats: Stats) -> list[list[str]]:
    """The paper's table: one row per figure, one column per part of the pool."""
    columns = {"seeds": stats.seeds, "machine": stats.machine}
    if stats.dataset is not None:
        columns["dataset"] = stats.dataset
    rows = [["", *columns]]
    for label, key in TABLE_ROWS:
        rows.append([label, *(cell(getattr(col, key)) for col in columns.values())])
    return rows


def mean_label(r: Rouge) -> str:
    return "-" if r.mean is None else f"{r.mean:.2f}"


def rouge_text(r: Rouge) -> str:
    top = max(b.count for b in r.bins)
    rows = [[bin_label(b, 1), str(b.count), bar(b.count, top)] for b in r.bins]
    return (
        "ROUGE-L of each machine instruction with its most similar seed "
        f"({r.instructions} instructions, mean {mean_label(r)})\n" + grid(rows, left=(0, 2))
    )


def verbs_text(verbs: list[Verb]) -> str:
    rows = [["verb", "count", "top objects"]] + [
        [v.verb, str(v.count), ", ".join(f"{o} {n}" for o, n in v.objects.items())] for v in verbs
    ]
    table = grid(rows, left=(0, 2)) if verbs else "  (no machine instructions)"
    return "Leading verbs and their objects (first word; see README)\n" + table


def lengths_text(ls: Lengths) -> str:
    rows = [["words", "instruction", "input", "output"]] + [
        [bin_label(b), str(b.count), str(i.count), str(o.count)]
        for b, i, o in zip(ls.instruction, ls.input, ls.output, strict=True)
    ]
    return f"Lengths in words ({ls.source}; inputs: non-empty only)\n" + grid(rows)


def rules_text(rules: dict[str, int]) -> str:
    rows = [[rule, str(n)] for rule, n in rules.items()]
    table = grid(rows) if rows else "  (nothing dropped, or filter not run yet)"
    return "Dropped by `selfinstruct filter`, per rule\n" + table


def diversity_rows(columns: list[DiversityColumn]) -> list[list[str]]:
    """One row per figure, one column per part (the pool, or before and after evolve)."""
    rows = [["", *(c.label for c in columns)]]
    for part in ("instructions", "outputs"):
        for key, name in DIVERSITY_ROWS:
            values = [getattr(getattr(c, part), key) for c in columns]
            label = f"{part}: {name}" if key == "mtld" else f"  {name}"
            rows.append([label, *map(figure, values)])
    return rows


DIVERSITY_ROWS = (
    ("mtld", "MTLD"),
    ("distinct_1", "distinct-1"),
    ("distinct_2", "distinct-2"),
    ("rouge_l", "mean pairwise ROUGE-L"),
)


def figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}" if value >= 10 else f"{value:.3f}"


def diversity_text(columns: list[DiversityColumn]) -> str:
    sample = max(c.instructions.rouge_sample for c in columns)
    return (
        "Lexical diversity (MTLD as published: Self-Instruct-52K 25.9, FLAN-T5 48.5, ShareGPT "
        f"77.3; ROUGE-L over a seeded sample of up to {sample})\n" + grid(diversity_rows(columns))
    )


def render_text(stats: Stats) -> str:
    """`selfinstruct stats` as aligned plain-text tables."""
    note = "" if stats.dataset is not None else " (no dataset.jsonl yet)"
    return "\n\n".join(
        [
            f"stats: {stats.pool}{note}\n" + grid(summary_table(stats)),
            rouge_text(stats.rouge_vs_seeds),
            verbs_text(stats.verbs),
            lengths_text(stats.lengths),
            rules_text(stats.filter_rules),
            diversity_text(stats.diversity),
            *judged_text(stats.curation, stats.review),
        ]
    )
