"""What the judge said of a pool, for `stats` and `report`: the score distribution of the
latest judge of curation.jsonl, and the last review's table (from run.json)."""

from __future__ import annotations

import html
from typing import Any

from selfinstruct.models import Curation
from selfinstruct.stages.curate import distribution, pool_items
from selfinstruct.stages.judge import latest_judge, verdicts
from selfinstruct.stages.review import ASKED, last_review
from selfinstruct.store.pool import Pool


def judged(pool: Pool) -> dict[str, Any]:
    """`curation` ({judge, scores: kind -> score -> count}) and `review`, None when absent."""
    curation = None
    if (judge := latest_judge(pool, pool.curation, Curation)) is not None:
        scores = distribution(pool_items(pool), verdicts(pool, pool.curation, Curation, judge))
        curation = {"judge": judge, "scores": scores}
    return {"curation": curation, "review": last_review(pool)}


def percent(row: dict[str, Any]) -> str:
    if not row["n"]:
        return "-"
    return f"{row['share']:.0%} [{row['low']:.0%}-{row['high']:.0%}] of {row['n']}"


def judged_text(curation: dict[str, Any] | None, review: dict[str, Any] | None) -> list[str]:
    """The plain-text tables of `stats` for what the judge said (none when it said nothing)."""
    parts = []
    if curation is not None:
        kinds = list(curation["scores"])
        keys = list(curation["scores"][kinds[0]])
        lines = [f"{'score':<10}" + "".join(f"{k:>16}" for k in kinds)]
        for key in keys:
            lines.append(f"{key:<10}" + "".join(f"{curation['scores'][k][key]:>16}" for k in kinds))
        parts.append(f"Scores by `selfinstruct curate` ({curation['judge']})\n" + "\n".join(lines))
    if review is not None:
        lines = []
        for q, (name, asked) in enumerate(ASKED.items()):
            cells = "  ".join(f"{percent(c['rows'][q]):<24}" for c in review["columns"])
            lines.append(
                f"  {asked:<52}{cells}  paper {review['columns'][0]['rows'][q]['paper']:.0%}"
            )
            assert name == review["columns"][0]["rows"][q]["question"]
        names = ", ".join(c["dataset"] for c in review["columns"])
        parts.append(f"Review by {review['judge']} ({names})\n" + "\n".join(lines))
    return parts


def _table(header: list[str], rows: list[list[str]], cls: str = "") -> str:
    """An HTML table of already escaped cells."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><tr>{head}</tr>{body}</table>'


def judged_html(curation: dict[str, Any] | None, review: dict[str, Any] | None) -> str:
    """The report's section on the judge: curate's scores, the review table, and a few
    examples of each failure with the judge's reason ("" when no judge was asked)."""
    esc = html.escape
    parts = []
    if curation is not None:
        kinds = list(curation["scores"])
        rows = [
            [esc(key)] + [str(curation["scores"][k][key]) for k in kinds]
            for key in curation["scores"][kinds[0]]
        ]
        parts.append(f"<p>Scores by <code>{esc(curation['judge'])}</code> (curate).</p>")
        parts.append(_table(["score", *map(esc, kinds)], rows))
    if review is not None:
        columns = review["columns"]
        header = ["question", *(esc(c["dataset"]) for c in columns), "paper"]
        rows = [
            [esc(asked), *(esc(percent(c["rows"][q])) for c in columns)]
            + [f"{columns[0]['rows'][q]['paper']:.0%}"]
            for q, asked in enumerate(ASKED.values())
        ]
        parts.append(
            f"<p>Review by <code>{esc(review['judge'])}</code>: the share of yes, "
            "with its 95% Wilson interval, beside the paper's Table 2.</p>"
        )
        parts.append(_table(header, rows))
        failures = [
            [esc(asked), esc(f["instruction"]), esc(f["input"]), esc(f["output"]), esc(f["reason"])]
            for q, asked in enumerate(ASKED.values())
            for f in columns[0]["rows"][q]["failures"]
        ]
        if failures:
            parts.append(f"<h3>Examples of each failure ({esc(columns[0]['dataset'])})</h3>")
            header = ["failed", "instruction", "input", "output", "the judge's reason"]
            parts.append(_table(header, failures, cls="records"))
    return "".join(parts)
