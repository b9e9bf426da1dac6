"""End-of-stage summaries: what was done, what was dropped and why, what it cost."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from selfinstruct.clock import now
from selfinstruct.errors import SelfInstructError, WorkLeft
from selfinstruct.pricing import BATCH_DISCOUNT

if TYPE_CHECKING:
    from selfinstruct.models import Usage
    from selfinstruct.pipeline.batch import BatchReport
    from selfinstruct.pipeline.run import RunReport


def columns(rows: list[dict[str, Any]]) -> str:
    """A table with a header line, one column per key of the first row ("-" for None)."""
    keys = list(rows[0])
    cells = [keys] + [["-" if row[k] is None else str(row[k]) for k in keys] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(keys))]
    lines = ("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in cells)
    return "\n".join(line.rstrip() for line in lines)


def table(rows: list[tuple[str, str]]) -> str:
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"  {label:<{width}}  {value}" for label, value in rows)


def usage_rows(usage: Usage) -> list[tuple[str, str]]:
    cost = "n/a (unknown model prices; set --price-in/--price-out)"
    if usage.cost is not None:
        cost = f"${usage.cost:.4f}"
    rows = [
        ("requests", f"{usage.requests} sent, {usage.cached} from cache, {usage.failed} failed"),
        ("retries", str(usage.retries)),
        ("tokens", tokens_text(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens)),
        ("cost", cost),
    ]
    if usage.errors:
        errors = ", ".join(f"{name} x{n}" for name, n in sorted(usage.errors.items()))
        rows.insert(2, ("errors", errors))
    return rows + refused_rows([usage])


def refused_rows(usages: list[Usage]) -> list[tuple[str, str]]:
    """One row a parameter the server refused: how it was handled from then on, and why."""
    found: dict[str, str] = {}
    for usage in usages:
        found.update(usage.dropped)
    return [(f"refused {name}", why) for name, why in sorted(found.items())]


def tokens_text(prompt: int, completion: int, cached: int) -> str:
    """ "1200 prompt (300 cached, 25%) + 400 completion": the cached share, priced lower."""
    share = f" ({cached} cached, {cached / prompt:.0%})" if cached and prompt else ""
    return f"{prompt} prompt{share} + {completion} completion"


def reason_rows(rejected: Counter[str]) -> list[tuple[str, str]]:
    return [(f"  {reason}", str(n)) for reason, n in rejected.most_common()]


def run_rows(report: RunReport) -> list[tuple[str, str]]:
    gen, n = report.generate, report.counts
    tasks = n.get("output_first", 0) + n.get("input_first", 0)
    rows = [
        (
            "instructions",
            f"{gen.total} / {report.target} (+{gen.accepted}, "
            f"{sum(gen.rejected.values())} rejected)",
        ),
        (
            "classified",
            f"{n.get('yes', 0)} yes, {n.get('no', 0)} no, {n.get('unparsed', 0)} unparsed",
        ),
        ("instances", f"{n.get('instances', 0)} for {tasks} instructions"),
    ]
    if report.preset == "alpaca":  # each task came whole from stage 1
        rows[1:] = [("tasks", "written whole by stage 1 (--preset alpaca: no stages 2 and 3)")]
    if parked := n.get("in_open_batches", 0):
        rows.append(parked_row(parked))
    if report.filter is not None:
        rows.append(("dataset", f"{report.filter.instances_kept} instances -> {report.filter.out}"))
    rows.append(("elapsed", f"{report.elapsed:.1f}s"))
    if report.concurrency:
        rows.append(("concurrency", concurrency_text(report.concurrency)))
    for stage, usage in report.usage.items():
        rows.append((f"{stage} requests", usage_rows(usage)[0][1]))
    unknown = any(u.cost is None for u in report.usage.values())
    total = sum((u.cost or 0.0) for u in report.usage.values())
    used = report.usage.values()
    prompt, completion = sum(u.prompt_tokens for u in used), sum(u.completion_tokens for u in used)
    rows.append(("tokens", tokens_text(prompt, completion, sum(u.cached_tokens for u in used))))
    rows.append(("cost", "n/a (unknown model prices)" if unknown else f"${total:.4f}"))
    rows += refused_rows(list(report.usage.values()))
    if report.spent:
        rows.append(("spent, all runs", spent(report.spent)))
    return rows + warning_rows(report.warnings)


def warning_rows(warnings: list[str]) -> list[tuple[str, str]]:
    """One row a yield warning (stages.yields), after the figures it explains."""
    return [("warning", text) for text in warnings]


def status_rows(s: dict[str, Any]) -> list[tuple[str, str]]:
    gen, cls, ins, last = s["generate"], s["classify"], s["instances"], s["last_run"] or {}
    usage = s["usage"]
    dataset = s["filter"]["dataset"]
    return (
        [
            ("pool", s["pool"]),
            (
                "generate",
                f"{gen['done']} / {s['target'] or '-'} instructions, "
                f"{gen['failures']} failed requests" + also(spent(usage, "generate")),
            ),
            (
                "classify",
                f"{cls['done']} done ({cls['yes']} yes, {cls['no']} no, "
                f"{cls['unparsed']} unparsed), {cls['pending']} pending, "
                f"{cls['failures']} failed requests"
                + (f", {cls['not_asked']} not asked (alpaca)" if cls.get("not_asked") else "")
                + also(spent(usage, "classify")),
            ),
            (
                "instances",
                f"{ins['done']} done ({ins['instances']} instances), "
                f"{ins['pending']} pending, {ins['failures']} failed requests"
                + also(spent(usage, "instances")),
            ),
            *([("evolve", spent(usage, "evolve") or "-")] if "evolve" in usage else []),
            ("batches", batches_row(s["batches"])),
            ("dataset", "not written yet" if dataset is None else f"{dataset} instances"),
            ("spent", spent(usage) or "nothing yet"),
            ("last run", last_run(last, s["lock"])),
            ("lock", f"held by {s['lock']}" if s["lock"] else "free"),
        ]
        + [
            ("torn line", f"{path}: {n} bytes, left out; repaired on the next write")
            for path, n in s["torn"].items()
        ]
        + warning_rows(s["warnings"])
    )


def last_run(last: dict[str, Any], lock: str | None) -> str:
    """When the last `run` started and ended, and how; or that it is running, or was killed."""
    if last.get("outcome") == "running":
        if lock:
            return f"running since {last['started']}"
        return f"{last['started']} to -: killed (it never finished; the pool is saved)"
    c = last.get("concurrency")
    return (
        f"{last.get('started', '-')} to {last.get('finished', '-')}: {last.get('outcome', '-')}"
        + also(f"concurrency {concurrency_text(c)}" if c else "")
    )


def spent(usage: dict[str, dict[str, Any]], stage: str | None = None) -> str:
    """ "N tokens (S% of the prompt tokens cached), $C" over all stages' totals (or one
    stage's); "" before any request."""
    totals = [t for name, t in usage.items() if stage in (None, name) and t]
    if not totals:
        return ""
    prompt = sum(t.get("prompt_tokens", 0) for t in totals)
    tokens = prompt + sum(t.get("completion_tokens", 0) for t in totals)
    cached = sum(t.get("cached_tokens", 0) for t in totals)
    share = f" ({cached / prompt:.0%} of the prompt tokens cached)" if cached and prompt else ""
    paid = [t for t in totals if "cost" in t]  # a stage that never paid has no cost
    known = [float(t["cost"]) for t in paid if t["cost"] is not None]
    cost = f"${sum(known):.4f}" if len(known) == len(paid) else "cost n/a (unknown prices)"
    return f"{tokens} tokens{share}, {cost}"


def also(extra: str) -> str:
    """ "; extra" to append to a row, or nothing."""
    return f"; {extra}" if extra else ""


def parked_row(count: int) -> tuple[str, str]:
    """The summary row for work left to open batches (stages.base.leave_to_batches)."""
    return ("in open batches", f"{count} (left to `selfinstruct batch collect`)")


def concurrency_text(c: dict[str, int]) -> str:
    """The adaptive limit's story: its ceiling, and how often and how low it came down."""
    if not c["cuts"]:
        return str(c["ceiling"])
    times = "once" if c["cuts"] == 1 else f"{c['cuts']} times"
    return f"{c['ceiling']}, lowered {times} (to {c['lowest']} at the lowest)"


def batches_row(b: dict[str, Any]) -> str:
    if not b["open"]:
        return "none open"
    return (
        f"{b['open']} open ({b['requests']} requests; {', '.join(b['stages'])}): "
        "`selfinstruct batch status` for details"
    )


class Log:
    """Where `run` reports: stdout unless --quiet, and a timestamped --log-file for cron."""

    def __init__(self, path: Path | None, quiet: bool) -> None:
        self.path, self.quiet = path, quiet

    def __enter__(self) -> Log:
        return self

    def __exit__(self, kind: object, error: object, tb: object) -> None:
        if isinstance(error, SelfInstructError):
            self.write(f"Error: {error}")

    def write(self, text: str) -> None:
        if self.path is not None:
            stamp = now()
            with open(self.path, "a", encoding="utf-8") as fp:
                fp.write("".join(f"{stamp} {line}\n" for line in text.splitlines()))

    def echo(self, text: str) -> None:
        self.write(text)
        if not self.quiet:
            typer.echo(text)

    def finish(
        self,
        stage: str,
        rows: list[tuple[str, str]],
        stopped: str | None,
        incomplete: str | None = None,
        interrupted: SelfInstructError | None = None,
    ) -> None:
        """The summary table; then a signal's exit (the boundary words it), a cap's (exit 3)
        or that of work left (exit 4)."""
        heading = outcome(stopped, incomplete, interrupted is not None)
        self.echo(f"{stage}: {heading}\n" + table(rows))
        if interrupted:
            raise interrupted  # __exit__ logs it; the CLI's boundary prints it and exits
        if stopped:
            self.write(f"Stopped: {stopped}")
            typer.echo(f"Stopped: {stopped}; the pool is saved - re-run to continue.", err=True)
            raise typer.Exit(3)
        if incomplete:
            self.write(f"Incomplete: {incomplete}")
            typer.echo(incomplete_line(incomplete), err=True)
            raise typer.Exit(WorkLeft.exit_code)


def outcome(stopped: str | None, incomplete: str | None, interrupted: bool = False) -> str:
    """How a stage ended: interrupted (a signal), stopped early (a cap), incomplete (requests
    failed for good), or done."""
    if interrupted:
        return "interrupted"
    return "stopped early" if stopped else "incomplete" if incomplete else "done"


def incomplete_line(incomplete: str) -> str:
    return f"Incomplete: {incomplete}; the pool is saved - run again to finish."


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else many or word + 's'}"


def batch_rows(report: BatchReport) -> list[tuple[str, str]]:
    """What a batch-mode invocation collected, wrote to the pool, submitted, and what it cost."""
    rows = collected_rows(report) + pool_rows(report)
    for label, events in (("submitted", report.submitted), ("exported", report.exported)):
        if events:
            per = Counter[str]()
            for event in events:
                per[event.stage] += event.requests
            detail = ", ".join(f"{stage} {n}" for stage, n in per.items())
            files = plural(len(events), "file")
            rows.append((label, f"{plural(sum(per.values()), 'request')} in {files} ({detail})"))
    usage = report.usage.values()
    prompt, completion = (
        sum(u.prompt_tokens for u in usage),
        sum(u.completion_tokens for u in usage),
    )
    rows.append(("tokens", tokens_text(prompt, completion, sum(u.cached_tokens for u in usage))))
    costs = [u.cost for u in usage]
    total = "n/a (unknown model prices)" if None in costs else f"${sum(filter(None, costs)):.4f}"
    rows.append(("cost", f"{total} (batch price: {BATCH_DISCOUNT:.0%} of the online one)"))
    return rows


def collected_rows(report: BatchReport) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    if report.collected:
        done = sum(e.done for e in report.collected)
        failed = sum(e.failed for e in report.collected)
        again = f", {failed} failed (asked again on the next submit)" if failed else ""
        batches = plural(len(report.collected), "batch", "batches")
        rows.append(("collected", f"{batches}: {plural(done, 'response')}{again}"))
        for e in report.collected:
            if e.status != "completed":
                rows.append(
                    (f"  {e.batch_id}", str(e.status) + (f": {e.error}" if e.error else ""))
                )
    if report.imported:
        known, unknown = report.imported["known"], report.imported["unknown"]
        rows.append(("imported", f"{plural(known, 'result')} ({unknown} unknown)"))
    if report.waiting:
        waiting = Counter(f"{event.stage} {status}" for event, status in report.waiting)
        rows.append(("waiting", ", ".join(f"{n} {what}" for what, n in sorted(waiting.items()))))
    return rows


def pool_rows(report: BatchReport) -> list[tuple[str, str]]:
    rows, gen, n = [], report.generate, report.counts
    if gen is not None:
        added = f"+{gen.accepted}, {sum(gen.rejected.values())} rejected"
        rows.append(("instructions", f"{gen.total} / {gen.target} ({added})"))
    if n["yes"] + n["no"] + n["unparsed"]:
        rows.append(("classified", f"{n['yes']} yes, {n['no']} no, {n['unparsed']} unparsed"))
    if tasks := n["output_first"] + n["input_first"]:
        rows.append(("instances", f"{n['instances']} for {tasks} instructions"))
    if n["evolved"] + n["evolve_rejected"]:
        rows.append(
            ("evolved", f"{n['evolved']} new instructions, {n['evolve_rejected']} rejected")
        )
    if (dataset := report.dataset) is not None:
        rows.append(("dataset", f"{dataset.instances_kept} instances -> {dataset.out}"))
    return rows
