"""`selfinstruct report`: one self-contained HTML page of the stats, with plots as PNG data URIs.

matplotlib is an optional extra (`selfinstruct[report]`), imported only here and only when a
report is made; figures are drawn with the Agg canvas, never pyplot, so no GUI or global state.
"""

from __future__ import annotations

import base64
import html
import io
import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from selfinstruct import __version__
from selfinstruct.clock import now
from selfinstruct.errors import ConfigError
from selfinstruct.models import RejectedInstruction
from selfinstruct.outputs.judged import judged_html
from selfinstruct.outputs.provenance import model_name, provenance
from selfinstruct.outputs.stats import (
    Bin,
    Reject,
    Row,
    Stats,
    Verb,
    bin_label,
    dataset_path,
    diversity_rows,
    mean_label,
    pool_stats,
    read_dataset,
    read_rejects,
    summary_table,
)
from selfinstruct.store.pool import Pool, write_atomic

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.axis import Axis
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

SAMPLE, PER_RULE, CLIP = 10, 3, 600
COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3")
STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1100px;
       padding: 0 1rem; color: #222; }
h1 { margin-bottom: 0.2rem; } .sub { color: #666; margin-top: 0; }
section { margin: 2rem 0; } img { max-width: 100%; height: auto; display: block; }
table { border-collapse: collapse; margin: 0.5rem 0; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3rem 0.7rem; text-align: left;
         vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
table.records td { white-space: pre-wrap; max-width: 28rem; overflow-wrap: break-word; }
.rule { font-family: ui-monospace, monospace; white-space: nowrap; overflow-wrap: normal; }
.indent { display: inline-block; padding-left: 1.5rem; }
table.provenance th { display: none; }
table.provenance td:first-child { color: #555; white-space: nowrap; }
"""


@dataclass
class ReportResult:
    out: Path
    stats: Stats
    kept: int
    rejected: int


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError(
            "the report needs matplotlib - pip install 'selfinstruct[report]'"
        ) from None


def new_figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def png(fig: Figure) -> str:
    """The figure as a PNG data URI, drawn by the Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def integer_ticks(axis: Axis) -> None:
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def bars(ax: Axes, bins: list[Bin], title: str, colour: str) -> None:
    """One length histogram: a bar per bin, labelled like the text output."""
    ax.bar(range(len(bins)), [b.count for b in bins], color=colour)
    ax.set_xticks(range(len(bins)), [bin_label(b) for b in bins], rotation=60, fontsize=8)
    ax.set_title(title)
    ax.set_xlabel("words")
    integer_ticks(ax.yaxis)
    if not any(b.count for b in bins):
        ax.set_ylim(0, 1)  # not matplotlib's -0.05..0.05 around nothing


def rouge_chart(stats: Stats) -> str:
    r = stats.rouge_vs_seeds
    fig = new_figure(7, 3.4)
    ax = fig.add_subplot()
    ax.bar(
        [b.lo for b in r.bins],
        [b.count for b in r.bins],
        width=0.1,
        align="edge",
        color=COLOURS[0],
        edgecolor="white",
    )
    ax.axvline(0.7, color=COLOURS[3], linestyle="--", label="0.7: the novelty threshold")
    ax.set_xlim(0, 1)
    ax.set_xticks([k / 10 for k in range(11)])
    ax.set_xlabel("ROUGE-L F with the most similar seed instruction")
    ax.set_ylabel("machine instructions")
    integer_ticks(ax.yaxis)
    if not r.instructions:
        ax.set_ylim(0, 1)
    ax.legend(loc="upper right")
    return png(fig)


def lengths_chart(stats: Stats) -> str:
    ls = stats.lengths
    fig = new_figure(11, 3.4)
    axes = fig.subplots(1, 3)
    bars(axes[0], ls.instruction, "instructions", COLOURS[0])
    bars(axes[1], ls.input, "non-empty inputs", COLOURS[1])
    bars(axes[2], ls.output, "outputs", COLOURS[2])
    axes[0].set_ylabel("count")
    return png(fig)


def verbs_chart(stats: Stats) -> str:
    return png(verbs_figure(stats))


def verbs_figure(stats: Stats) -> Figure:
    """Each leading verb a bar, split into its top objects (labelled) and the rest (grey)."""
    verbs = list(reversed(stats.verbs))
    fig = new_figure(10, 0.32 * len(verbs) + 1.2)
    ax = fig.add_subplot()
    widest = max((v.count for v in verbs), default=1)
    for y, verb in enumerate(verbs):
        left = 0
        parts = [*verb.objects.items(), ("", verb.count - sum(verb.objects.values()))]
        for k, (obj, n) in enumerate(parts):
            colour = COLOURS[k % len(COLOURS)] if obj else "#cccccc"
            ax.barh(y, n, left=left, color=colour, edgecolor="white")
            if obj and n >= 0.06 * widest:
                ax.text(left + n / 2, y, obj, ha="center", va="center", fontsize=7, color="white")
            left += n
    ax.set_yticks(range(len(verbs)), [v.verb for v in verbs])
    ax.set_xlabel("machine instructions")
    integer_ticks(ax.xaxis)
    if not verbs:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no machine instructions yet", ha="center", transform=ax.transAxes)
    else:
        fig.legend(handles=verbs_legend(verbs), loc="outside upper center", ncols=5, fontsize=8)
    return fig


RANKS = ("1st object (most frequent)", "2nd object", "3rd object", "4th object", "5th object")


def verbs_legend(verbs: list[Verb]) -> list[Patch]:
    """What the segments' colours mean: the rank of the object among the verb's objects (the
    label on a segment names it), grey for the verb's other objects or none."""
    from matplotlib.patches import Patch

    ranks = max(len(v.objects) for v in verbs)
    handles = [Patch(color=COLOURS[k % len(COLOURS)], label=RANKS[k]) for k in range(ranks)]
    return [*handles, Patch(color="#cccccc", label="other objects, or none")]


def rules_chart(stats: Stats) -> str:
    rules = list(reversed(stats.filter_rules.items()))
    fig = new_figure(7, 0.35 * len(rules) + 1)
    ax = fig.add_subplot()
    ax.barh([r for r, _ in rules], [n for _, n in rules], color=COLOURS[3])
    ax.set_xlabel("records dropped")
    integer_ticks(ax.xaxis)
    return png(fig)


def esc(value: object) -> str:
    """HTML-escaped text, clipped so one huge record cannot swamp the page."""
    text = "" if value is None else str(value)
    return html.escape(text if len(text) <= CLIP else text[:CLIP] + " [...]")


def table(header: list[str], rows: Iterable[list[str]], cls: str = "", numeric: int = 0) -> str:
    """An HTML table; cells must already be escaped. The last `numeric` columns align right."""
    rows = list(rows)
    width = len(header)

    def cells(row: list[str], tag: str) -> str:
        return "".join(
            f"<{tag}{' class=n' if k >= width - numeric else ''}>{c}</{tag}>"
            for k, c in enumerate(row)
        )

    body = "".join(f"<tr>{cells(r, 'td')}</tr>" for r in rows)
    return f'<table class="{cls}"><tr>{cells(header, "th")}</tr>{body}</table>'


def img(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{html.escape(alt)}">'


def section(sid: str, title: str, body: str) -> str:
    return f'<section id="{sid}"><h2>{html.escape(title)}</h2>{body}</section>'


def samples(pool: Pool) -> tuple[list[Row], list[Reject]]:
    """Up to SAMPLE kept records at random (seed 0) and up to PER_RULE rejects per rule."""
    kept = list(read_dataset(pool)) if dataset_path(pool).exists() else []
    kept = random.Random(0).sample(kept, min(SAMPLE, len(kept)))
    by_rule: dict[str, list[Reject]] = {}
    for rej in read_rejects(pool):
        picked = by_rule.setdefault(rej.rule, [])
        if len(picked) < PER_RULE:
            picked.append(rej)
    return kept, [r for group in by_rule.values() for r in group]


def label(text: str) -> str:
    """A row label; the text tables' two-space indent becomes a CSS indent."""
    if text.startswith("  "):
        return f'<span class="indent">{esc(text.strip())}</span>'
    return esc(text)


def summary_html(stats: Stats) -> str:
    header, *rows = summary_table(stats)
    body = ([label(r[0]), *(esc(c) for c in r[1:])] for r in rows)
    return table([esc(h) for h in header], body, numeric=len(header) - 1)


def diversity_html(stats: Stats) -> str:
    header, *rows = diversity_rows(stats.diversity)
    body = ([label(r[0]), *(esc(c) for c in r[1:])] for r in rows)
    note = (
        "<p>MTLD of the machine instructions and their outputs, comparable with published "
        "figures (Self-Instruct-52K 25.9, FLAN-T5 48.5, ShareGPT 77.3); distinct-n; the mean "
        "ROUGE-L over all pairs of a seeded sample.</p>"
    )
    return note + table([esc(h) for h in header], body, numeric=len(header) - 1)


def filter_html(stats: Stats) -> str:
    if not stats.filter_rules:
        return "<p>Nothing dropped, or <code>selfinstruct filter</code> has not run yet.</p>"
    rows = [[f'<span class="rule">{esc(r)}</span>', str(n)] for r, n in stats.filter_rules.items()]
    return table(["rule", "dropped"], rows, numeric=1) + img(rules_chart(stats), "filter rules")


def kept_html(kept: list[Row]) -> str:
    if not kept:
        return "<p>No dataset yet: run <code>selfinstruct filter</code>.</p>"
    rows = [[esc(r.instruction), esc(r.input), esc(r.output)] for r in kept]
    return table(["instruction", "input", "output"], rows, cls="records")


def rejected_html(rejected: list[Reject]) -> str:
    if not rejected:
        return "<p>No rejected records.</p>"
    rows = [
        [
            f'<span class="rule">{esc(r.rule)}</span>',
            esc(r.instruction),
            esc(r.input),
            esc(r.output),
            esc(r.detail),
        ]
        for r in rejected
    ]
    return table(["rule", "instruction", "input", "output", "detail"], rows, cls="records")


def stage1_rejects(pool: Pool) -> tuple[dict[str, int], list[RejectedInstruction]]:
    """Stage 1's rejected candidates: the count per reason, and up to PER_RULE of each."""
    counts: dict[str, int] = {}
    picked: list[RejectedInstruction] = []
    if pool.rejected.exists():
        for rej in pool.read(pool.rejected, RejectedInstruction):
            counts[rej.reason] = counts.get(rej.reason, 0) + 1
            if counts[rej.reason] <= PER_RULE:
                picked.append(rej)
    ranked = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    picked.sort(key=lambda r: list(ranked).index(r.reason))
    return ranked, picked


def stage1_html(counts: dict[str, int], picked: list[RejectedInstruction]) -> str:
    if not counts:
        return "<p>Stage 1 rejected no candidate, or has not run in this pool.</p>"
    total = sum(counts.values())
    intro = (
        f"<p>{total} candidate instructions that stage 1 did not add to the pool: too similar "
        "to one already there (ROUGE-L), or dropped by the method's filters.</p>"
    )
    rows = [[f'<span class="rule">{esc(r)}</span>', str(n)] for r, n in counts.items()]
    samples = [
        [f'<span class="rule">{esc(r.reason)}</span>', esc(r.instruction), esc(r.detail)]
        for r in picked
    ]
    return (
        intro
        + table(["reason", "rejected"], rows, numeric=1)
        + f"<h3>A sample ({len(picked)})</h3>"
        + table(["reason", "instruction", "detail"], samples, cls="records")
    )


def provenance_html(rows: list[tuple[str, str]]) -> str:
    return table(["", ""], ([esc(k), esc(v)] for k, v in rows), cls="provenance")


def title_text(stats: Stats, model: str | None) -> str:
    """The page's title: what the data is and which model made it (not the pool's path)."""
    made = f" by {model}" if model else ""
    if stats.dataset is not None:
        return f"Self-Instruct dataset: {stats.dataset.instances} instances{made}"
    return f"Self-Instruct pool: {stats.machine.instructions} machine instructions{made}"


def render(
    stats: Stats,
    kept: list[Row],
    rejected: list[Reject],
    origin: list[tuple[str, str]] | None = None,
    stage1: tuple[dict[str, int], list[RejectedInstruction]] = ({}, []),
    model: str | None = None,
) -> str:
    """The whole page; every piece of record text goes through `esc`."""
    r = stats.rouge_vs_seeds
    body = [
        section("provenance", "Where it came from", provenance_html(origin or [])),
        section("summary", "The dataset", summary_html(stats)),
        section(
            "rouge",
            "Similarity to the seeds",
            f"<p>Each machine instruction's highest ROUGE-L F against the seed instructions "
            f"({r.instructions} instructions, mean {mean_label(r)}).</p>"
            + img(rouge_chart(stats), "ROUGE-L histogram"),
        ),
        section(
            "lengths",
            f"Lengths ({stats.lengths.source})",
            img(lengths_chart(stats), "length histograms"),
        ),
        section(
            "verbs",
            "Leading verbs and their objects",
            "<p>The first word of each machine instruction and the head of the noun phrase "
            "after it (a heuristic; see the README).</p>"
            + img(verbs_chart(stats), "verbs and objects"),
        ),
        section("stage1", "Rejected by stage 1", stage1_html(*stage1)),
        section("diversity", "Lexical diversity", diversity_html(stats)),
        section("filter", "Dropped by the filter", filter_html(stats)),
        section("kept", f"A sample of kept records ({len(kept)})", kept_html(kept)),
        section(
            "rejected", f"A sample of rejected records ({len(rejected)})", rejected_html(rejected)
        ),
    ]
    if judged := judged_html(stats.curation, stats.review):
        body.insert(-2, section("judge", "What the judge says", judged))
    title = esc(title_text(stats, model))
    sub = f"pool {esc(stats.pool)}, report by selfinstruct {__version__} on {esc(now())}"
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{STYLE}</style></head>\n<body>"
        f'<h1>{title}</h1><p class="sub">{sub}</p>\n' + "\n".join(body) + "\n</body></html>\n"
    )


def write_report(pool: Pool, out: Path) -> ReportResult:
    """Compute the stats, draw the charts and write the page atomically."""
    require_matplotlib()
    stats = pool_stats(pool)
    kept, rejected = samples(pool)
    out.parent.mkdir(parents=True, exist_ok=True)
    page = render(stats, kept, rejected, provenance(pool), stage1_rejects(pool), model_name(pool))
    write_atomic(out, page)
    return ReportResult(out, stats, len(kept), len(rejected))
