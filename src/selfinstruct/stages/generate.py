"""Stage 1: bootstrap new instructions from seeds and the machine pool (docs/method.md, stage 1)."""

from __future__ import annotations

import itertools
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfinstruct.config import GenerateSettings, Settings
from selfinstruct.errors import Interrupted, SelfInstructError
from selfinstruct.llm.client import LLM, Request
from selfinstruct.method.filters import BLACKLIST, InstructionFilter
from selfinstruct.method.parsing import continuation, parse_numbered
from selfinstruct.method.prompts import Template, load_template
from selfinstruct.method.similarity import RougeIndex, Screen
from selfinstruct.models import (
    Drops,
    MachineInstruction,
    RejectedInstruction,
    SeedTask,
    Similar,
    Usage,
    stable_id,
)
from selfinstruct.progress import progress
from selfinstruct.stages.base import llm_session, map_window, run_recorded
from selfinstruct.stages.yields import generate_warnings
from selfinstruct.store.cache import Completion, Counters
from selfinstruct.store.pool import JsonlAppender, Pool, bulk_load, pool_seeds, store_seeds

STAGE = "generate"
BARREN_LIMIT = 50  # responses in a row with nothing new: the model or prompt is not working


@dataclass
class GenerateReport:
    target: int
    before: int
    accepted: int = 0
    candidates: int = 0
    replayed: int = 0
    replies: int = 0  # applied, and of those: with at least one candidate; cut at max_tokens
    parsed: int = 0
    cut: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    stopped: str | None = None
    elapsed: float = 0.0
    usage: Usage = field(default_factory=Usage)
    interrupted: Interrupted | None = None  # by a signal: the CLI shows what was done, then exits
    warnings: list[str] = field(default_factory=list)  # stages.yields: the yield looks wrong

    @property
    def total(self) -> int:
        return self.before + self.accepted

    def check_yield(self, api: str) -> None:
        self.warnings = generate_warnings(
            self.replies, self.parsed, self.cut, self.candidates, self.accepted, api
        )


class Generator:
    """Owns the in-memory view of the pool; novelty is decided here, one candidate at a time."""

    whole_tasks = False  # True: an accepted record comes with its instance (the alpaca preset)

    def __init__(
        self,
        pool: Pool,
        seeds: list[SeedTask],
        llm: LLM,
        settings: GenerateSettings,
        template: Template,
        seed: int,
        on_accept: Callable[[MachineInstruction], object] = lambda record: None,
        machine: list[MachineInstruction] | None = None,
    ) -> None:
        self.pool, self.llm, self.settings, self.template = pool, llm, settings, template
        self.seed, self.on_accept = seed, on_accept
        self.seed_texts = [s.instruction for s in seeds]
        self.check = InstructionFilter(
            settings.blacklist if settings.blacklist is not None else BLACKLIST
        )
        if machine is None:  # callers that already read the pool pass its records
            machine = list(pool.read(pool.instructions, MachineInstruction))
        self.machine = [rec.instruction for rec in machine]
        self.owner = {rec.id: rec.request for rec in machine}  # id -> request that produced it
        self.index = RougeIndex(settings.rouge_threshold)
        self.index.extend(self.seed_texts + self.machine)
        self.reject_ids = {r.id for r in pool.read(pool.rejected, RejectedInstruction)}
        self.accepted_out = JsonlAppender(pool.instructions)
        self.rejected_out = JsonlAppender(pool.rejected)
        self.rounds = Counters(llm.cache)
        self.barren = 0
        self.report = GenerateReport(target=0, before=len(self.machine), usage=llm.usage)

    def prompt(self, round_no: int) -> tuple[str, int, int]:
        rng = random.Random(f"{self.seed}:{round_no}")
        return build_prompt(rng, self.seed_texts, self.machine, self.settings, self.template)

    def params(self, last: int) -> dict[str, Any]:
        params: dict[str, Any] = {"max_tokens": self.settings.max_tokens}
        params.update(self.settings.sampling(self.llm.settings.api))
        if self.llm.settings.api == "completions":
            stop_at = last + 1
            # A blank line ends the list too (as in the method's code): rambling costs nothing.
            params["stop"] = ["\n\n", f"\n{stop_at}", f"{stop_at}.", f"{stop_at} ."]
        return params

    def build_round(self, round_no: int) -> Request:
        """The request of one round, sampled from the pool as it stands; nothing is sent."""
        text, first, last = self.prompt(round_no)
        return self.llm.request(text, self.params(last), sample=round_no, first=first, last=last)

    async def one_round(self) -> tuple[Request, Completion | None]:
        req = self.build_round(self.rounds.take("generate.round"))
        return req, await self.llm.complete(req)

    def apply(self, req: Request, completion: Completion, report: GenerateReport) -> None:
        """Parse a response and decide on each candidate; mark the response used."""
        items = self.parse(req, completion)
        report.replies += 1
        report.parsed += bool(items)
        report.cut += completion.finish_reason == "length"
        before = report.accepted
        screen = self.index.screen(items)  # one pass over the pool for the whole reply
        for i, item in enumerate(items):
            if report.total >= report.target:
                break
            self.consider(item, req.key, int(req.meta["sample"]), i, report, screen)
        self.llm.cache.mark_applied(req.key)
        self.barren = 0 if report.accepted > before or not items else self.barren + 1
        if self.barren >= BARREN_LIMIT:
            raise SelfInstructError(
                f"the last {BARREN_LIMIT} responses gave no new instruction (see the reasons in "
                f"{self.pool.rejected}); check the model and the prompt template"
            )

    def parse(self, req: Request, completion: Completion) -> list[str]:
        """The candidate instructions of a reply, in order."""
        first = int(req.meta["first"])
        last = int(req.meta.get("last", first + self.settings.new_per_request - 1))
        text = continuation(completion.text, first, self.llm.settings.api)
        return parse_numbered(text, first, last, truncated=completion.finish_reason == "length")

    def keep(self, record: MachineInstruction, i: int) -> None:
        """Write an accepted instruction (the `i`-th candidate of its reply)."""
        self.accepted_out.append(record)

    def consider(
        self, text: str, key: str, round_no: int, i: int, report: GenerateReport, screen: Screen
    ) -> None:
        cid = stable_id("i", text)
        rid = f"r-{key[:16]}-{i}"
        if self.owner.get(cid) == key or rid in self.reject_ids:
            return  # already recorded before the run stopped: a replayed response
        report.candidates += 1
        verdict = self.check(text)
        if verdict is None and (match := screen.near_duplicate(i)) is not None:
            score, best = match
            verdict = ("too_similar", f"ROUGE-L {score:.3f} with: {self.index.text(best)}")
        if verdict is not None:
            self.reject(rid, text, verdict, key, report)
            return
        top = screen.most_similar(i, 10)  # novel: its 10 most similar pool texts, for the record
        similar = [
            Similar(instruction=self.index.text(j), score=round(score, 4)) for j, score in top
        ]
        mean = round(screen.mean_similarity(i), 4)
        self.index.add(text)
        self.machine.append(text)
        self.owner[cid] = key
        record = MachineInstruction(
            id=cid,
            instruction=text,
            most_similar=similar,
            mean_similarity=mean,
            request=key,
            round=round_no,
        )
        self.keep(record, i)
        report.accepted += 1
        self.on_accept(record)

    def reject(
        self, rid: str, text: str, verdict: tuple[str, str], key: str, report: GenerateReport
    ) -> None:
        reason, detail = verdict
        record = RejectedInstruction(
            id=rid, instruction=text, reason=reason, detail=detail, request=key
        )
        Drops(report.rejected, self.rejected_out.append)(reason, record)
        self.reject_ids.add(rid)

    def wanted(self, in_flight: int, report: GenerateReport) -> bool:
        """Launch another request only while the ones in flight cannot cover the target."""
        remaining = report.target - report.total
        done = max(1, self.llm.usage.requests + self.llm.usage.cached)
        per_request = max(1.0, report.accepted / done if report.accepted else 3.0)
        return remaining > 0 and in_flight * per_request < remaining

    def summary(self) -> tuple[str | None, dict[str, Any]]:
        """(why the run stopped early, counters) for the manifest."""
        r = self.report
        counters = {
            "accepted": r.accepted,
            "candidates": r.candidates,
            "replayed": r.replayed,
            "rejected": dict(r.rejected),
            "pool": r.total,
        }
        return r.stopped, counters

    async def run(self, target: int) -> GenerateReport:
        report = GenerateReport(target=target, before=len(self.machine), usage=self.llm.usage)
        self.report = report
        started = time.monotonic()
        try:
            self.replay(report)
            await self.loop(report)
        finally:
            report.elapsed = time.monotonic() - started
            self.close()
        return report

    def replay(self, report: GenerateReport) -> None:
        """Apply the cached responses not yet applied (a crash, or a collected batch)."""
        for pending in self.llm.cache.pending(STAGE):
            if report.total < report.target:
                req = Request(pending.key, STAGE, pending.request["body"], pending.request["meta"])
                self.apply(req, pending.completion, report)
                report.replayed += 1
                self.llm.usage.cached += 1

    def close(self) -> None:
        self.accepted_out.close()
        self.rejected_out.close()

    async def loop(self, report: GenerateReport) -> None:
        report.stopped = await map_window(
            itertools.repeat(None),
            lambda _: self.one_round(),
            lambda _, result: self.finish(*result, report),
            self.llm.settings.concurrency,
            more=lambda in_flight: self.wanted(in_flight, report),
        )

    def finish(self, req: Request, completion: Completion | None, report: GenerateReport) -> None:
        if completion is not None and report.total < report.target:
            self.apply(req, completion, report)


def build_prompt(
    rng: random.Random,
    seed_texts: list[str],
    machine: list[str],
    settings: GenerateSettings,
    template: Template,
) -> tuple[str, int, int]:
    """A few-shot prompt: (text, first new number, last new number).

    `min(machine_examples, |machine|)` examples come from the machine pool and the rest from the
    seeds, shuffled and numbered; the model continues the numbering.
    """
    n_machine = min(settings.machine_examples, len(machine), settings.examples)
    n_seed = min(settings.examples - n_machine, len(seed_texts))
    examples = rng.sample(machine, n_machine) + rng.sample(seed_texts, n_seed)
    rng.shuffle(examples)
    # One line each, without a trailing ":" (as the method's prompt builder shows them).
    shown = (" ".join(text.split()).rstrip(":") for text in examples)
    listing = "\n".join(f"{i}. {text}" for i, text in enumerate(shown, 1))
    first, last = len(examples) + 1, len(examples) + settings.new_per_request
    text = template.render(
        examples=listing, next=first, last=last, count=len(examples), new=settings.new_per_request
    )
    return text, first, last


@dataclass
class GenerateJob:
    """Everything `selfinstruct generate` resolved from flags, env and config."""

    pool: Pool
    seeds: Path | None
    target: int
    llm: Settings
    stage: GenerateSettings
    prompts: Path | None
    seed: int
    progress: bool = True


def generate(job: GenerateJob) -> GenerateReport:
    """Run stage 1 until the machine pool holds `job.target` instructions (or a cap stops it)."""
    from selfinstruct.stages.alpaca import make_generator, settle_preset, template_name

    pool = job.pool
    with pool.writing():
        stage = settle_preset(pool, job.stage)
        template = load_template(template_name(stage, job.llm.api), job.prompts)
        seeds = pool_seeds(pool, job.seeds)
        with bulk_load():
            machine = list(pool.read(pool.instructions, MachineInstruction))
        have = len(machine)
        if have >= job.target:
            return GenerateReport(target=job.target, before=have)
        with llm_session(pool, job.llm, STAGE) as llm:
            store_seeds(pool, seeds)
            with bulk_load():
                gen = make_generator(pool, seeds, llm, stage, template, job.seed, machine)
            entry = {
                "generate": stage.model_dump(mode="json"),
                "sampling": stage.sampling(job.llm.api),
                "seed": job.seed,
                "target": job.target,
                "prompts": {template.name: template.sha256},
            }
            bar = progress("generate", job.target, have, "instr", job.progress)
            gen.on_accept = lambda record: bar.update(1)
            with bar:
                try:
                    report = run_recorded(pool, llm, entry, gen.run(job.target), gen.summary)
                except Interrupted as e:
                    report = gen.report
                    report.interrupted = e
                report.check_yield(job.llm.api)
                return report


def sample_prompt(
    seeds: list[SeedTask], settings: GenerateSettings, template: Template, seed: int
) -> str:
    """The first round's prompt (no machine instructions yet), for --dry-run."""
    texts = [s.instruction for s in seeds]
    return build_prompt(random.Random(f"{seed}:0"), texts, [], settings, template)[0]
