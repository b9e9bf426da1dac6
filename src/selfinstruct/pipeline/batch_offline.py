"""Batch mode for offline engines: export the next requests, import an engine's results.

`vllm run-batch -i requests.jsonl -o results.jsonl --model M` reads what `export` writes and
writes what `import` reads (the OpenAI Batch API's input and output formats).
"""

from __future__ import annotations

from pathlib import Path

from selfinstruct.errors import InputError
from selfinstruct.llm.batchfiles import input_line, read_results
from selfinstruct.pipeline.batch import Batches, BatchJob, BatchReport, session
from selfinstruct.store.userfiles import write_jsonl


def export(job: BatchJob, out: Path) -> BatchReport:
    """Write the next requests for an offline engine; they stay rebuildable (not held back)."""

    def write(batches: Batches) -> None:
        events = batches.write_next("exported")
        lines = (input_line(r) for e in events for r in batches.ledger.requests(e.file))
        write_jsonl(out, lines)
        batches.report.exported = events

    return session(job, Batches.apply, write)


def import_results(job: BatchJob, path: Path) -> BatchReport:
    """Ingest a Batch API output file (e.g. from `vllm run-batch`) for exported requests."""
    if not path.is_file():
        raise InputError(f"{path}: results file not found")
    results = {r.custom_id: r for r in read_results(path.read_bytes(), str(path))}

    def ingest(batches: Batches) -> None:
        ledger, known = batches.ledger, 0
        for event in [e for e in ledger.latest.values() if e.state != "collected"]:
            ids = {r.custom_id for r in ledger.requests(event.file)}
            mine = {k: v for k, v in results.items() if k in ids}
            if mine:
                known += len(mine)
                done, failed = batches.store(event.file, mine, None)
                if event.state in ("exported", "imported"):
                    ledger.record(event, "imported", done=done, failed=failed)
        batches.report.imported.update(known=known, unknown=len(results) - known)
        if results and not known:
            raise InputError(
                f"{path}: none of its {len(results)} results answers a request of "
                f"{job.pool.root}; import what `selfinstruct batch export` wrote for this pool"
            )

    return session(job, ingest, Batches.apply)
