"""The final dataset in the formats fine-tuning tools read: Alpaca, OpenAI chat, ShareGPT, and
prompt-completion pairs, optionally shuffled and split; every file is written atomically. The
preference pairs of `preferences` go out as DPO's formats (outputs/pairs.py).

An instruction with an input becomes one user turn, `instruction + "\\n\\n" + input`; without
an input, the instruction alone. Prompt-completion pairs use TEMPLATES[0], or with
`varied_templates` one of TEMPLATES per record, picked by `Random(f"{seed}:{id}")`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from selfinstruct.errors import ConfigError
from selfinstruct.models import SeedTask
from selfinstruct.outputs import pairs
from selfinstruct.outputs.stats import dataset_path, read_dataset
from selfinstruct.store.pool import Pool
from selfinstruct.store.userfiles import is_std, write_json_list, write_jsonl

FORMATS = ("alpaca", "openai", "sharegpt", "prompt-completion", *pairs.FORMATS)
_SPLIT = re.compile(r"^([A-Za-z0-9_-]+)=([0-9]*\.?[0-9]+)$")


class Example(NamedTuple):
    id: str
    instruction: str
    input: str
    output: str


class Template(NamedTuple):
    """A prompt with an input, a prompt without one, and the completion."""

    with_input: str
    without_input: str
    completion: str


TEMPLATES = (
    Template("{instruction}\n\nInput: {input}\n\nOutput:", "{instruction}\n\nOutput:", " {output}"),
    Template("{instruction}\n{input}\n\n", "{instruction}\n\n", "{output}"),
    Template(
        "Task: {instruction}\nInput: {input}\nAnswer:", "Task: {instruction}\nAnswer:", " {output}"
    ),
    Template(
        "Here is a task and its input.\nTask: {instruction}\nInput:\n{input}\nResponse:\n",
        "Here is a task.\nTask: {instruction}\nResponse:\n",
        "{output}",
    ),
    Template(
        "Input: {input}\n\nWhat to do with it: {instruction}\n\nResult:",
        "What to do: {instruction}\n\nResult:",
        " {output}",
    ),
    Template("Q: {instruction}\n{input}\nA:", "Q: {instruction}\nA:", " {output}"),
    Template('{instruction}\n\n"""\n{input}\n"""\n\n', "{instruction}\n\n", "{output}"),
)


@dataclass
class ExportJob:
    pool: Pool
    format: str
    out: Path
    include_seeds: bool = False
    shuffle: bool = False
    seed: int = 0
    split: str | None = None
    system: str | None = None
    varied_templates: bool = False
    parquet: bool = False  # also when `out` ends in .parquet

    @property
    def as_parquet(self) -> bool:
        return self.parquet or self.out.suffix == ".parquet"


@dataclass
class ExportReport:
    from_dataset: int = 0
    from_seeds: int = 0
    pairs_of: str = ""  # dpo formats: the setting the pairs come from
    files: list[tuple[str, int, Path]] = field(default_factory=list)


def user_text(ex: Example) -> str:
    """The instruction, then a blank line and the input when there is one."""
    return f"{ex.instruction}\n\n{ex.input}" if ex.input.strip() else ex.instruction


def alpaca(ex: Example, job: ExportJob) -> dict[str, Any]:
    return {"instruction": ex.instruction, "input": ex.input, "output": ex.output}


def openai(ex: Example, job: ExportJob) -> dict[str, Any]:
    system = [{"role": "system", "content": job.system}] if job.system else []
    user = {"role": "user", "content": user_text(ex)}
    return {"messages": [*system, user, {"role": "assistant", "content": ex.output}]}


def sharegpt(ex: Example, job: ExportJob) -> dict[str, Any]:
    turns = [{"from": "human", "value": user_text(ex)}, {"from": "gpt", "value": ex.output}]
    return {"conversations": turns}


def prompt_completion(ex: Example, job: ExportJob) -> dict[str, Any]:
    pick = random.Random(f"{job.seed}:{ex.id}").randrange(len(TEMPLATES))
    t = TEMPLATES[pick if job.varied_templates else 0]
    prompt = t.with_input if ex.input.strip() else t.without_input
    return {
        "prompt": prompt.format(instruction=ex.instruction, input=ex.input),
        "completion": t.completion.format(output=ex.output),
    }


WRITERS: dict[str, Callable[[Example, ExportJob], dict[str, Any]]] = {
    "alpaca": alpaca,
    "openai": openai,
    "sharegpt": sharegpt,
    "prompt-completion": prompt_completion,
}


def check_options(job: ExportJob) -> list[tuple[str, float]]:
    """Usage errors before anything is read; returns the parsed --split."""
    if job.format not in FORMATS:
        raise ConfigError(f"unknown format {job.format!r}; choose one of: {', '.join(FORMATS)}")
    if job.system is not None and job.format not in ("openai", "dpo-chat"):
        raise ConfigError("--system applies only to --format openai and dpo-chat")
    if job.include_seeds and job.format in pairs.FORMATS:
        raise ConfigError("--include-seeds: seed tasks have no preference pairs; drop it")
    if job.varied_templates and job.format != "prompt-completion":
        raise ConfigError("--varied-templates applies only to --format prompt-completion")
    if job.split and is_std(job.out):
        raise ConfigError("--split writes one file per split; give --out a file name, not -")
    return parse_split(job.split) if job.split else []


def parse_split(spec: str) -> list[tuple[str, float]]:
    """`train=0.95,validation=0.05` -> [("train", 0.95), ("validation", 0.05)]."""
    parts = [_SPLIT.match(part.strip()) for part in spec.split(",")]
    if not all(parts):
        raise ConfigError(
            f"--split {spec!r}: expected NAME=FRACTION,..., e.g. train=0.95,validation=0.05"
        )
    splits = [(m.group(1), float(m.group(2))) for m in parts if m]
    names = [name for name, _ in splits]
    if len(set(names)) < len(names):
        raise ConfigError(f"--split {spec!r}: each split name may appear only once")
    if any(f <= 0 for _, f in splits) or abs(sum(f for _, f in splits) - 1) > 1e-9:
        total = sum(f for _, f in splits)
        raise ConfigError(
            f"--split {spec!r}: the fractions must be positive and sum to 1, not {total:g}"
        )
    return splits


def split_sizes(n: int, fractions: list[float]) -> list[int]:
    """Sizes that add up to n exactly, from cumulative rounding."""
    bounds, total = [0], 0.0
    for f in fractions:
        total += f
        bounds.append(min(n, round(total * n)))
    bounds[-1] = n
    return [b - a for a, b in zip(bounds, bounds[1:], strict=False)]


def load_examples(job: ExportJob, report: ExportReport) -> list[Example]:
    """Seed instances (when asked and not already in the dataset), then the dataset."""
    path = dataset_path(job.pool)
    if not path.exists():
        raise ConfigError(f"no dataset at {path} - run `selfinstruct filter` first")
    rows = [Example(r.id, r.instruction, r.input, r.output) for r in read_dataset(job.pool)]
    report.from_dataset = len(rows)
    seen = {ex[1:] for ex in rows}
    seeds = []
    if job.include_seeds:
        for task in job.pool.read(job.pool.seeds, SeedTask):
            for k, inst in enumerate(task.instances):
                ex = Example(f"{task.id}-{k}", task.instruction, inst.input, inst.output)
                if ex[1:] not in seen:
                    seen.add(ex[1:])
                    seeds.append(ex)
    report.from_seeds = len(seeds)
    return seeds + rows


def write_file(path: Path, records: list[dict[str, Any]], job: ExportJob) -> None:
    """One export file: Parquet, a JSON list (alpaca) or JSONL; `-` is standard output."""
    if not is_std(path):
        if path.resolve() == dataset_path(job.pool).resolve():
            raise ConfigError(f"--out {path} would overwrite the dataset; choose another file")
        path.parent.mkdir(parents=True, exist_ok=True)
    if job.as_parquet:
        from selfinstruct.outputs.parquet import write_parquet

        write_parquet(path, records, job.format)
    elif job.format == "alpaca":
        write_json_list(path, records)
    else:
        write_jsonl(path, records)


def build_records(job: ExportJob, report: ExportReport) -> list[dict[str, Any]]:
    """The records of the export, in the job's format and order (shuffled with --shuffle)."""
    if job.format in pairs.FORMATS:
        found, report.pairs_of = pairs.load_pairs(job.pool)
        report.from_dataset = len(found)
        if job.shuffle:
            random.Random(job.seed).shuffle(found)
        return [pairs.WRITERS[job.format](pair, job.system) for pair in found]
    examples = load_examples(job, report)
    if job.shuffle:
        random.Random(job.seed).shuffle(examples)
    return [WRITERS[job.format](ex, job) for ex in examples]


def export(job: ExportJob) -> ExportReport:
    """Write the pool's dataset (and seeds) in one format, to one file or one per split."""
    splits = check_options(job)
    report = ExportReport()
    records = build_records(job, report)
    if not splits:
        write_file(job.out, records, job)
        report.files.append(("", len(records), job.out))
        return report
    for name, part in split_records(records, splits):
        path = job.out.with_name(f"{job.out.stem}.{name}{job.out.suffix}")
        write_file(path, part, job)
        report.files.append((name, len(part), path))
    return report


def split_records(
    records: list[dict[str, Any]], splits: list[tuple[str, float]]
) -> list[tuple[str, list[dict[str, Any]]]]:
    """The records cut in order into the named splits (sizes from `split_sizes`)."""
    parts, start = [], 0
    sizes = split_sizes(len(records), [f for _, f in splits])
    for (name, _), size in zip(splits, sizes, strict=True):
        parts.append((name, records[start : start + size]))
        start += size
    return parts
