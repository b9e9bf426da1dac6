"""The dataset card (README.md) that `selfinstruct push` uploads, generated from the pool:
a YAML header the Hub reads (license, task categories, language, size, tags, the splits'
files), how the data was made (from run.json), the stats table, the filter counts, the review
table when the pool has one, and the data's limitations."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from selfinstruct.outputs.stats import Stats, cell, pool_stats, summary_table
from selfinstruct.store import manifest
from selfinstruct.store.pool import Pool
from selfinstruct.store.userfiles import jsonl_file

SIZES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"))
TAGS = ("self-instruct", "synthetic", "instruction-tuning", "selfinstruct")
PAPER = "the paper's four stages (generate, classify, instances, filter)"
MODEL_STAGES = ("generate", "classify", "instances")  # the method's; other stages are listed too


@dataclass
class CardInfo:
    """What the card says besides the pool: the repo, the export's choices, the files."""

    repo_id: str
    format: str
    license: str = "other"
    language: str = "en"
    splits: list[tuple[str, int, str]] = field(default_factory=list)  # name, rows, path in repo
    include_seeds: bool = False
    shuffle: bool = False
    seed: int = 0
    pushed: str = ""  # the date of the push


def size_category(n: int) -> str:
    return next((label for top, label in SIZES if n < top), "1M<n<10M")


def yaml_header(info: CardInfo) -> str:
    """The card's metadata. Every scalar is a JSON string, which YAML reads as the same string."""
    total = sum(n for _, n, _ in info.splits)
    q = json.dumps
    lines = [
        "---",
        f"license: {q(info.license)}",
        "task_categories:",
        "- text-generation",
        "language:",
        f"- {q(info.language)}",
        "size_categories:",
        f"- {q(size_category(total))}",
        "tags:",
        *(f"- {q(tag)}" for tag in TAGS),
        "configs:",
        "- config_name: default",
        "  data_files:",
    ]
    for name, _, path in info.splits:
        lines += [f"  - split: {q(name)}", f"    path: {q(path)}"]
    return "\n".join([*lines, "---", ""])


def table(rows: list[list[str]]) -> str:
    """A Markdown table; the first row is the header. Pipes in cells are escaped."""
    cells = [[c.replace("|", "\\|").replace("\n", " ") for c in row] for row in rows]
    lines = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(cells[0])]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells[1:]])


def file_sha256(pool: Pool) -> str:
    digest = hashlib.sha256()
    with open(pool.seeds, "rb") as fp:
        for block in iter(lambda: fp.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def dates(run: dict[str, Any]) -> tuple[str, str]:
    """The first start and the last update that run.json records, or '-'."""
    starts = [s["started"] for s in run["stages"].values() if s.get("started")]
    ends = [s["updated"] for s in run["stages"].values() if s.get("updated")]
    return (min(starts) if starts else "-", max(ends) if ends else "-")


def model_rows(run: dict[str, Any]) -> list[list[str]]:
    """One row per stage that called a model: which model, how, what it took."""
    rows = [["stage", "model", "API", "requests", "tokens (prompt + completion)"]]
    order = [*MODEL_STAGES, *sorted(set(run["stages"]) - set(MODEL_STAGES))]
    for stage in order:
        entry = run["stages"].get(stage) or {}
        settings, totals = entry.get("settings") or {}, entry.get("totals") or {}
        if not settings.get("model"):
            continue
        model = settings["model"] + (" (local GGUF)" if settings.get("local") else "")
        tokens = f"{totals.get('prompt_tokens', 0)} + {totals.get('completion_tokens', 0)}"
        rows.append(
            [stage, model, str(settings.get("api", "-")), cell(totals.get("requests")), tokens]
        )
    return rows


def how_made(pool: Pool, info: CardInfo) -> str:
    """Method, preset, models, seeds and their hash, settings and dates."""
    run = manifest.load(pool)
    first, last = dates(run)
    preset = run.get("preset") or (run.get("run") or {}).get("preset")
    seeds = sum(1 for _ in jsonl_file(pool.seeds)) if pool.seeds.exists() else 0
    version = (run.get("versions") or {}).get("selfinstruct", "-")
    lines = [
        "## How the data was made",
        "",
        "- **Method:** Self-Instruct (Wang et al., 2022): a model extends a small set of "
        "human-written seed tasks with new instructions (kept only when ROUGE-L <= 0.7 "
        "against all earlier ones), says which are classification tasks, writes inputs and "
        "outputs for each, and a filter drops invalid and duplicate instances.",
        f"- **Preset:** {preset or PAPER}",
        f"- **Tool:** selfinstruct {version}",
    ]
    if pool.seeds.exists():
        lines.append(f"- **Seed tasks:** {seeds} (`seeds.jsonl`, sha256 `{file_sha256(pool)}`)")
    lines += [
        f"- **Generated:** {first} to {last}; pushed {info.pushed or '-'}",
        f"- **Export:** format `{info.format}`"
        + (", seed instances included" if info.include_seeds else "")
        + (f", shuffled with seed {info.seed}" if info.shuffle else ""),
    ]
    target = (run.get("run") or {}).get("target")
    if target:
        lines.append(f"- **Target:** {target} machine instructions")
    models = model_rows(run)
    if len(models) > 1:
        lines += ["", "Models (the generator, and a judge where one was used):", "", table(models)]
    settings = settings_lines(run)
    if settings:
        lines += ["", "Settings of the last run of each stage:", "", *settings]
    return "\n".join(lines)


def settings_lines(run: dict[str, Any]) -> list[str]:
    """Each stage's own settings and sampling, as run.json records them (a stage run on its
    own records them; `run` records the model settings only)."""
    lines = []
    for stage, entry in sorted(run["stages"].items()):
        found = {**(entry.get(stage) or {}), **(entry.get("sampling") or {})}
        if "seed" in entry:
            found["seed"] = entry["seed"]
        if found:
            pairs = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(found.items()))
            lines.append(f"- `{stage}`: {pairs}")
    return lines


def stats_section(stats: Stats) -> str:
    rows = summary_table(stats)
    rows[0][0] = "figure"
    return "## Statistics\n\nAs in the paper's Table 1:\n\n" + table(rows)


def filter_section(stats: Stats) -> str:
    if not stats.filter_rules:
        return "## Filtered out\n\nThe final filter dropped no instance."
    rows = [["rule", "instances dropped"], *([r, str(n)] for r, n in stats.filter_rules.items())]
    return "## Filtered out\n\nInstances the final filter dropped, per rule:\n\n" + table(rows)


def review_section(pool: Pool) -> str:
    """The review table from POOL/review.jsonl (`selfinstruct review`), or "" when the pool
    has none. This is where the review's own table plugs in; until then each yes/no answer
    (a boolean field of the records) is counted."""
    path = pool.root / "review.jsonl"
    if not path.exists():
        return ""
    records = [obj for _, obj in jsonl_file(path)]
    yes: Counter[str] = Counter()
    asked: Counter[str] = Counter()
    for obj in records:
        for key, value in obj.items():
            if isinstance(value, bool):
                asked[key] += 1
                yes[key] += value
    rows = [["question", "yes", "share"]]
    rows += [[k, f"{yes[k]} / {n}", f"{yes[k] / n:.0%}"] for k, n in asked.items()]
    body = table(rows) if len(rows) > 1 else "(no yes/no answers in review.jsonl)"
    return f"## Review\n\nA judge model reviewed {len(records)} sampled instances:\n\n{body}"


def limitations(pool: Pool) -> str:
    models = sorted({r[1] for r in model_rows(manifest.load(pool))[1:]})
    by = ", ".join(f"`{m}`" for m in models) or "a language model"
    return (
        "## Limitations\n\n"
        f"Every instruction, input and output here was written by {by}, not by people, and "
        "no person checked them. Expect wrong answers, tasks that cannot be done from text "
        "alone, and the biases and errors of the model; the paper's expert review of 200 "
        "instances found 92% valid instructions, 79% appropriate inputs, 58% correct outputs "
        "and 54% with all fields valid. The filters catch malformed and near-duplicate "
        "records, not incorrect ones. Check the terms of the model that wrote the data before "
        "using it to train another model; the license above is the publisher's choice."
    )


def dataset_card(pool: Pool, info: CardInfo) -> str:
    """The whole README.md."""
    stats = pool_stats(pool)
    total = sum(n for _, n, _ in info.splits)
    splits = ", ".join(f"{name} {n}" for name, n, _ in info.splits)
    intro = (
        f"# {info.repo_id.split('/')[-1]}\n\n"
        f"{total} instruction-following examples ({splits}) made with "
        "selfinstruct by the Self-Instruct method.\n\n"
        "```python\nfrom datasets import load_dataset\n\n"
        f'ds = load_dataset("{info.repo_id}")\n```'
    )
    sections = [
        intro,
        how_made(pool, info),
        stats_section(stats),
        filter_section(stats),
        review_section(pool),
        limitations(pool),
    ]
    return yaml_header(info) + "\n" + "\n\n".join(s for s in sections if s) + "\n"
