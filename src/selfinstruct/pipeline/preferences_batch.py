"""`preferences --batch`: the candidates on the generator's server, then their scores on the
judge's, through the ledger, request files and cache of every batch mode (pipeline/batch.py,
pipeline/judge_batch.py).

One invocation collects the finished batches of both into the cache, records every prompt
whose candidates and deciding judge replies are all cached, and submits what is missing:
candidates (one request each: no `n` in a batch), then the judge's requests for the candidates
that came back, then retries for replies without a score. Run it until nothing is waiting.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

from selfinstruct.clock import now
from selfinstruct.llm.batchfiles import Ledger, batch_request, split
from selfinstruct.llm.client import LLM, Request
from selfinstruct.method.judging import parse_score
from selfinstruct.method.prompts import load_template
from selfinstruct.pipeline.batch import Budget
from selfinstruct.pipeline.judge_batch import JudgeBatch
from selfinstruct.stages.distill import check_api
from selfinstruct.stages.judge import Item, Judge
from selfinstruct.stages.preferences import (
    JUDGE_STAGE,
    RUBRIC,
    STAGE,
    PreferencesJob,
    PreferencesReport,
    PreferenceWorker,
    Prompt,
    Scored,
    dataset_prompts,
    outcomes,
    records,
)
from selfinstruct.store import manifest
from selfinstruct.store.cache import RequestCache
from selfinstruct.store.pool import JsonlAppender


def advance_preferences(job: PreferencesJob) -> PreferencesReport:
    """Collect, record, submit; run it again until nothing is waiting."""
    check_api(job.llm)
    judge_settings = job.judge.llm(job.llm)
    template = load_template(RUBRIC, job.prompts)
    pool = job.pool
    with pool.writing():
        cache, failures = RequestCache(pool.cache), JsonlAppender(pool.failures)
        ledger = Ledger(pool)
        gen = LLM(job.llm, cache, failures, STAGE, connect=False)
        judged = LLM(judge_settings, cache, failures, JUDGE_STAGE, connect=False)
        judge = Judge(judged, template, parse_score, job.judge)
        worker = PreferenceWorker(gen, judge, replace(job.settings, use_n=False), pool)
        report = worker.report
        report.generator, report.judge = job.llm.model, judge.identity
        setting = (report.generator, report.judge, job.settings.candidates, job.settings.margin)
        # JudgeBatch's collect and push serve any stage; its worker gives only the counts here
        batches = [JudgeBatch(ledger, llm, judge, worker) for llm in (gen, judged)]  # type: ignore[arg-type]
        started = now()
        try:
            for batch in batches:
                batch.collect()
            prompts = dataset_prompts(pool)
            done = records(pool, setting)
            pending = [p for p in prompts if p.id not in done]
            report.total, report.pending = len(prompts), len(pending)
            report.done_before = len(prompts) - len(pending)
            busy = ledger.open_ids()
            todo: dict[str, list[Request]] = {STAGE: [], JUDGE_STAGE: []}
            with worker.out:
                for p in pending:
                    scored = cached(worker, judge, p, todo)
                    if scored is not None:
                        worker.record(p, scored)
            for batch in batches:
                wanted = {r.key: r for r in todo[batch.llm.stage] if r.key not in busy}
                submit(batch, list(wanted.values()), ledger)
            for llm in (gen, judged):
                if llm.usage.requests or llm.usage.failed:
                    entry = {"started": started, "outcome": "batch", "judge": judge.identity}
                    manifest.record_stage(pool, llm.stage, entry, llm.usage)
        finally:
            for batch in batches:
                batch.close()
            ledger.close()
            failures.close()
            cache.close()
        report.outcomes = outcomes(prompts, records(pool, setting))
    return report


def cached(
    worker: PreferenceWorker, judge: Judge[int], p: Prompt, todo: dict[str, list[Request]]
) -> list[Scored] | None:
    """A prompt's candidates and scores when the cache holds them all; else None, with the
    requests still missing added to `todo`."""
    scored: list[Scored] = []
    whole, retried = True, 0
    for k in range(worker.settings.candidates):
        req = worker.candidate(p, k)
        got = worker.llm.cache.get(req.key)
        if got is None:
            todo[STAGE].append(req)
            whole = False
            continue
        ask, asked = judge.chain(
            Item.of(p.instruction, p.input, got.text.strip()), judge.llm.cache.get
        )
        if asked.completion is None:
            todo[JUDGE_STAGE].append(ask)
            whole = False
        retried += bool(ask.meta["sample"])
        scored.append((req, got, asked))
    if not whole:
        return None
    worker.report.counts["retried"] += retried
    return scored


def submit(batch: JudgeBatch, todo: list[Request], ledger: Ledger) -> None:
    """The requests in new batch files (within the budget), and files not yet pushed."""
    llm = batch.llm
    budget = Budget(llm.settings, llm.prices)
    resume = [e for e in batch.open() if e.state != "submitted"]
    built = (batch_request(r, llm.settings.api) for r in todo)
    fresh = [ledger.write(chunk) for chunk in split(itertools.takewhile(budget.allows, built))]
    for event in resume + fresh:
        batch.counts["submitted"] += batch.remote.push(event).requests
    if budget.stopped:
        batch.worker.report.stopped = budget.stopped
