"""`evolve`: rewrite pool instructions into new ones by named operations (docs/evolve.md).

Round 1 takes a seeded share of the pool's stage 1 instructions, round k the instructions that
round k-1 accepted; each gets one operation, drawn from (seed, round, id). A reply must be a
changed instruction (method.evolve.changed), pass stage 1's filters and be ROUGE-L novel
against the whole pool (seeds and every machine instruction, its parent included); it is then
appended to instructions.jsonl with its parent and operation, so classify and instances take it
up like any other. Rejects go to rejected_instructions.jsonl with their reason. A request is
recorded once (accepted or rejected, by its key); a re-run skips it, and one whose record was
lost is answered from the cache.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfinstruct.config import EvolveSettings, GenerateSettings, Settings
from selfinstruct.errors import Interrupted
from selfinstruct.llm.batchfiles import open_keys
from selfinstruct.llm.client import LLM, Request
from selfinstruct.method.evolve import changed, clean_reply
from selfinstruct.method.filters import BLACKLIST, InstructionFilter
from selfinstruct.method.prompts import Template, load_template
from selfinstruct.method.similarity import RougeIndex, Screen
from selfinstruct.models import (
    Drops,
    MachineInstruction,
    RejectedInstruction,
    Similar,
    Usage,
    stable_id,
)
from selfinstruct.progress import progress
from selfinstruct.stages.base import (
    StageReport,
    leave_to_batches,
    llm_session,
    map_window,
    run_recorded,
)
from selfinstruct.store.cache import Completion
from selfinstruct.store.pool import JsonlAppender, Pool, bulk_load, pool_seeds

STAGE = "evolve"
REJECT_PREFIX = "e-"  # ids of evolve's rejects in rejected_instructions.jsonl


@dataclass
class EvolveJob:
    """Everything `selfinstruct evolve` resolved from flags, env and config."""

    pool: Pool
    llm: Settings
    stage: EvolveSettings
    generate: GenerateSettings  # stage 1's rules: blacklist and ROUGE-L threshold
    prompts: Path | None
    progress: bool = True


@dataclass
class EvolveReport:
    ops: list[str] = field(default_factory=list)
    rounds: int = 0
    asked: int = 0  # requests this run (sent or answered from the cache)
    done_before: int = 0  # requests recorded by earlier runs, skipped
    accepted: Counter[str] = field(default_factory=Counter)  # per operation
    rejected: Counter[str] = field(default_factory=Counter)  # per reason
    failed: int = 0
    per_round: dict[int, int] = field(default_factory=dict)  # accepted per round
    in_open_batches: int = 0
    stopped: str | None = None
    elapsed: float = 0.0
    usage: Usage = field(default_factory=Usage)
    interrupted: Interrupted | None = None
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> tuple[str | None, dict[str, Any]]:
        counters = {
            "asked": self.asked,
            "done_before": self.done_before,
            "accepted": dict(self.accepted),
            "rejected": dict(self.rejected),
            "failed": self.failed,
        }
        return self.stopped, counters


def chosen(seed: int, share: float, record_id: str) -> bool:
    """Whether round 1 takes this instruction: stable as the pool grows (a hash, not a draw)."""
    digest = hashlib.sha256(f"{seed}:{record_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") < share * 2**64


class Evolver:
    """Builds, sends and records the evolve requests of a pool, round by round."""

    def __init__(
        self, pool: Pool, llm: LLM, job: EvolveJob, templates: dict[str, Template]
    ) -> None:
        self.pool, self.llm, self.job, self.templates = pool, llm, job, templates
        self.settings = job.stage
        blacklist = job.generate.blacklist
        self.check = InstructionFilter(blacklist if blacklist is not None else BLACKLIST)
        with bulk_load():
            seeds = pool_seeds(pool, None)
            self.machine = list(pool.read(pool.instructions, MachineInstruction))
            rejects = list(pool.read(pool.rejected, RejectedInstruction))
            self.index = RougeIndex(job.generate.rouge_threshold)
            self.index.extend(
                [s.instruction for s in seeds] + [r.instruction for r in self.machine]
            )
        self.ids = {r.id for r in self.machine}
        self.recorded = {r.request for r in self.machine if r.parent is not None}
        self.recorded |= {r.request for r in rejects if r.id.startswith(REJECT_PREFIX)}
        self.out = JsonlAppender(pool.instructions)
        self.rejected_out = JsonlAppender(pool.rejected)
        self.report = EvolveReport(ops=list(self.settings.ops), usage=llm.usage)
        self.on_done: Callable[[MachineInstruction | None], object] = lambda record: None
        self.on_accept: Callable[[MachineInstruction], object] = lambda record: None

    def parents(self, round_no: int) -> list[MachineInstruction]:
        """Round 1: a seeded share of stage 1's instructions; round k: what round k-1 gave."""
        if round_no == 1:
            share, seed = self.settings.sample, self.settings.seed
            return [r for r in self.machine if r.parent is None and chosen(seed, share, r.id)]
        return [r for r in self.machine if r.parent is not None and r.round == round_no - 1]

    def operation(self, parent: MachineInstruction, round_no: int) -> str:
        rng = random.Random(f"{self.settings.seed}:{round_no}:{parent.id}")
        return rng.choice(self.settings.ops)

    def build(self, item: tuple[MachineInstruction, int]) -> Request:
        parent, round_no = item
        op = self.operation(parent, round_no)
        prompt = self.templates[op].render(instruction=parent.instruction)
        params: dict[str, Any] = {
            "max_tokens": self.settings.max_tokens,
            "temperature": self.settings.temperature,
        }
        if self.llm.settings.api == "completions":
            params["stop"] = ["\n\n", "Instruction:"]
        return self.llm.request(prompt, params, parent=parent.id, op=op, round=round_no)

    def pending(self, round_no: int) -> list[tuple[MachineInstruction, int]]:
        """This round's parents whose request is not recorded yet."""
        items = [(parent, round_no) for parent in self.parents(round_no)]
        return [item for item in items if self.build(item).key not in self.recorded]

    def rounds(self) -> Iterator[tuple[int, list[tuple[MachineInstruction, int]]]]:
        """(round, its pending items), each computed after the previous round was recorded."""
        for round_no in range(1, self.settings.rounds + 1):
            yield round_no, self.pending(round_no)

    # -- batch mode (pipeline.batch): build without sending, apply what the cache holds

    def apply_cached(self) -> None:
        for _, items in self.rounds():
            for item in items:
                req = self.build(item)
                if (got := self.llm.cache.get(req.key)) is not None:
                    self.record(item, (req, got))

    def next_requests(self, busy: set[str]) -> Iterator[Request]:
        """The requests of the first round with work left that nothing holds yet."""
        for _, items in self.rounds():
            reqs = [self.build(item) for item in items]
            fresh = [r for r in reqs if r.key not in busy and self.llm.cache.get(r.key) is None]
            if items:
                yield from fresh
                return

    async def ask(self, item: tuple[MachineInstruction, int]) -> tuple[Request, Completion | None]:
        req = self.build(item)
        return req, await self.llm.complete(req)

    def record(
        self, item: tuple[MachineInstruction, int], result: tuple[Request, Completion | None]
    ) -> None:
        parent, round_no = item
        req, completion = result
        self.report.asked += 1
        if completion is None:
            self.report.failed += 1  # not recorded: the next run asks again
            self.on_done(None)
            return
        text = clean_reply(completion.text)
        judged = self.judge(parent.instruction, text, completion.finish_reason)
        if isinstance(judged, Screen):
            self.accept(parent, round_no, req, text, judged)
        else:
            self.reject(req, text or completion.text, judged)
            self.on_done(None)

    def judge(self, parent: str, text: str, finish_reason: str) -> tuple[str, str] | Screen:
        """(reason, detail) to reject; else the screen against the pool, for the record."""
        verdict = changed(parent, text) or self.check(text)
        if verdict is None and finish_reason == "length":
            verdict = ("cut_off", f"the reply reached max_tokens ({self.settings.max_tokens})")
        if verdict is not None:
            return verdict
        screen = self.index.screen([text])  # one pass over the pool, as stage 1 does
        if (match := screen.near_duplicate(0)) is not None:
            score, best = match
            return ("too_similar", f"ROUGE-L {score:.3f} with: {self.index.text(best)}")
        if stable_id("i", text) in self.ids:
            return ("too_similar", "the same text is already in the pool")
        return screen

    def accept(
        self, parent: MachineInstruction, round_no: int, req: Request, text: str, screen: Screen
    ) -> None:
        top = screen.most_similar(0, 10)  # its 10 most similar pool texts, for the record
        similar = [Similar(instruction=self.index.text(j), score=round(s, 4)) for j, s in top]
        op = str(req.meta["op"])
        record = MachineInstruction(
            id=stable_id("i", text),
            instruction=text,
            most_similar=similar,
            mean_similarity=round(screen.mean_similarity(0), 4),
            request=req.key,
            round=round_no,
            parent=parent.id,
            operation=op,
        )
        self.index.add(text)
        self.machine.append(record)
        self.ids.add(record.id)
        self.recorded.add(req.key)
        self.out.append(record)
        self.report.accepted[op] += 1
        self.report.per_round[round_no] = self.report.per_round.get(round_no, 0) + 1
        self.on_done(record)
        self.on_accept(record)

    def reject(self, req: Request, text: str, verdict: tuple[str, str]) -> None:
        reason, detail = verdict
        record = RejectedInstruction(
            id=f"{REJECT_PREFIX}{req.key[:16]}",
            instruction=text,
            reason=reason,
            detail=f"{req.meta['op']} of {req.meta['parent']}: {detail}".rstrip(": "),
            request=req.key,
        )
        Drops(self.report.rejected, self.rejected_out.append)(reason, record)
        self.recorded.add(req.key)

    async def run(self, reserved: frozenset[str]) -> EvolveReport:
        report = self.report
        started = time.monotonic()
        try:
            for round_no, items in self.rounds():
                report.done_before += len(self.parents(round_no)) - len(items)
                parked = StageReport()
                items = leave_to_batches(reserved, items, self.build, parked)
                report.in_open_batches += parked.counts["in_open_batches"]
                report.rounds = round_no
                report.stopped = await map_window(
                    items, self.ask, self.record, self.llm.settings.concurrency
                )
                if report.stopped is not None:
                    break
        finally:
            report.elapsed = time.monotonic() - started
            self.close()
        return report

    def close(self) -> None:
        self.out.close()
        self.rejected_out.close()


def templates(job: EvolveJob) -> dict[str, Template]:
    return {op: load_template(f"evolve_{op}", job.prompts) for op in job.stage.ops}


def evolve(job: EvolveJob) -> EvolveReport:
    """Run the evolve rounds over the pool (a cap or a signal stops it; a re-run goes on)."""
    pool = job.pool
    with pool.writing(), llm_session(pool, job.llm, STAGE) as llm:
        evolver = Evolver(pool, llm, job, templates(job))
        entry = {
            STAGE: job.stage.model_dump(mode="json"),
            "prompts": {t.name: t.sha256 for t in evolver.templates.values()},
        }
        first = len(evolver.parents(1))  # the bar's total: round 1's share, once per round
        bar = progress(STAGE, first * job.stage.rounds, 0, "instr", job.progress)
        evolver.on_done = lambda record: bar.update(1)
        with bar:
            try:
                run_recorded(pool, llm, entry, evolver.run(open_keys(pool)), evolver.report.summary)
            except Interrupted as e:
                evolver.report.interrupted = e
        evolver.report.warnings = evolve_warnings(evolver.report)
        return evolver.report


def evolve_warnings(report: EvolveReport) -> list[str]:
    """One line when the yield looks wrong: most replies rejected for not being a rewrite."""
    answered = sum(report.accepted.values()) + sum(report.rejected.values())
    off = sum(report.rejected[r] for r in ("refusal", "answer", "unchanged", "empty"))
    if answered >= 20 and off / answered > 0.5:
        return [
            f"{off} of {answered} replies were refusals, answers or copies, not rewrites: "
            "the model may not follow the evolve prompts; try a stronger model or --prompts"
        ]
    return []
