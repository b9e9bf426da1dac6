"""Instruction backtranslation (Li et al. 2023, self-augmentation): texts you already have are
taken as answers, and the model writes the instruction each one answers (docs/backtranslate.md).

A kept pair enters the pool as a finished task: its instruction in instructions.jsonl (with
its source), a classification record (not a classification task; no request) and an instance
set with the one instance (input empty, output the segment), so that classify and instances
have nothing to do for it and filter, export and stats read it like any other task.
"""

from __future__ import annotations

import contextlib
import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfinstruct.config import BacktranslateSettings
from selfinstruct.llm.client import LLM, Request
from selfinstruct.method.backtranslation import (
    build_prompt,
    example_seeds,
    not_a_request,
    segment_id,
)
from selfinstruct.method.filters import BLACKLIST, InstructionFilter
from selfinstruct.method.parsing import parse_request
from selfinstruct.method.prompts import Template, load_template
from selfinstruct.method.segments import segments
from selfinstruct.method.similarity import RougeIndex
from selfinstruct.models import (
    NOT_ASKED,
    Backtranslated,
    BacktranslateReject,
    Classification,
    Drops,
    Instance,
    InstanceSet,
    MachineInstruction,
    SeedTask,
    Similar,
    Source,
    stable_id,
)
from selfinstruct.stages.base import StageJob, StageReport, llm_session, run_worker
from selfinstruct.stages.yields import backtranslate_warnings
from selfinstruct.store.cache import Completion
from selfinstruct.store.pool import JsonlAppender, Pool, bulk_load, pool_seeds, store_seeds
from selfinstruct.store.sources import read_texts

STAGE = "backtranslate"
PROMPT_KIND = "backtranslated"  # InstanceSet.prompt_kind of a backtranslated pair


@dataclass(frozen=True)
class Piece:
    """A segment to write an instruction for."""

    id: str
    text: str
    source: Source


@dataclass
class BacktranslateReport(StageReport):
    """StageReport's counts (accepted, failed, ...) plus the input's and the rules' counts."""

    texts: int = 0
    segments: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # too_short, too_long
    rejected: Counter[str] = field(default_factory=Counter)

    def incomplete(self) -> str | None:
        """ "2 segments without an instruction": requests that failed for good, for next time."""
        return self.left("segments without an instruction")

    def summary(self) -> tuple[str | None, dict[str, Any]]:
        stopped, counters = super().summary()
        extra = {"texts": self.texts, "segments": self.segments}
        return stopped, {
            **counters,
            **extra,
            "skipped": dict(self.skipped),
            "rejected": dict(self.rejected),
        }


@dataclass
class BacktranslateJob(StageJob):
    """What `selfinstruct backtranslate` resolved; `stage` is a BacktranslateSettings."""

    source: Path = Path()
    seeds: Path | None = None
    seed: int = 0  # of the seed examples shown; fixed, so a re-run sends the same requests


def plan(source: Path, settings: BacktranslateSettings) -> tuple[list[Piece], BacktranslateReport]:
    """Read and segment every text (before the pool is touched: a bad record stops here)."""
    report = BacktranslateReport()
    pieces: list[Piece] = []
    for text in read_texts(source, settings.field):
        report.texts += 1
        for seg in segments(text.text, settings.min_words, settings.max_words, text.markdown):
            report.segments += 1
            if seg.skip is not None:
                report.skipped[seg.skip] += 1
                continue
            sid = segment_id(text.file, text.record, seg.offset, seg.text)
            where = Source(file=text.file, record=text.record, offset=seg.offset, segment=sid)
            pieces.append(Piece(sid, seg.text, where))
    return pieces, report


def done_segments(pool: Pool) -> set[str]:
    """Segments with a pair in the pool or a reject on record: a re-run skips them."""
    done = {r.source.segment for r in pool.read(pool.instructions, Backtranslated) if r.source}
    done.update(r.id for r in pool.read(pool.backtranslate_rejects, BacktranslateReject))
    return done


class BackTranslator:
    """Asks for each segment's instruction; decides on it serially, against the whole pool."""

    def __init__(
        self,
        pool: Pool,
        llm: LLM,
        template: Template,
        settings: BacktranslateSettings,
        seeds: list[SeedTask],
        machine: list[MachineInstruction],
        seed: int = 0,
    ) -> None:
        self.llm, self.template, self.settings, self.seed = llm, template, settings, seed
        self.examples = example_seeds(seeds)
        self.check = InstructionFilter(
            settings.blacklist if settings.blacklist is not None else BLACKLIST
        )
        self.index = RougeIndex(settings.rouge_threshold)
        self.index.extend([s.instruction for s in seeds] + [m.instruction for m in machine])
        self.ids = {m.id for m in machine}
        self.out = JsonlAppender(pool.instructions)
        self.classes = JsonlAppender(pool.classifications)
        self.sets = JsonlAppender(pool.instances)
        self.rejects = JsonlAppender(pool.backtranslate_rejects)
        self.report = BacktranslateReport(usage=llm.usage)
        self.on_done: Callable[[Any], object] = lambda record: None

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "max_tokens": self.settings.max_tokens,
            "temperature": self.settings.temperature,
        }
        if self.llm.settings.api == "completions":
            params["stop"] = ["\n\n", "\nAnswer:"]
        return params

    def build(self, piece: Piece) -> Request:
        """The request for one segment; the examples are drawn by its id, so it never changes."""
        rng = random.Random(f"{self.seed}:{piece.id}")
        k = self.settings.examples
        prompt = build_prompt(self.template, self.examples, piece.text, k, rng)
        return self.llm.request(prompt, self.params(), segment=piece.id)

    async def ask(self, piece: Piece) -> tuple[str, Completion | None]:
        req = self.build(piece)
        return req.key, await self.llm.complete(req)

    def record(self, piece: Piece, result: tuple[str, Completion | None]) -> None:
        key, completion = result
        if completion is None:
            self.report.counts["failed"] += 1  # not recorded: the next run asks again
            return
        text = parse_request(completion.text) or ""
        verdict, similar, mean = self.judge(text, completion)
        if verdict is not None:
            reason, detail = verdict
            reject = BacktranslateReject(
                id=piece.id,
                instruction=text,
                reason=reason,
                detail=detail,
                request=key,
                source=piece.source,
            )
            Drops(self.report.rejected, self.rejects.append)(reason, reject)
        else:
            self.accept(piece, text, key, completion, similar, mean)
        self.on_done(piece)

    def judge(
        self, text: str, completion: Completion
    ) -> tuple[tuple[str, str] | None, list[Similar], float]:
        """(rule and detail, or None to keep; the 10 most similar pool texts; mean ROUGE-L)."""
        if not text:
            return ("unparsed", completion.text[:200]), [], 0.0
        if completion.finish_reason == "length":
            return ("cut", "the reply stopped at max_tokens"), [], 0.0
        verdict = self.check(text) or not_a_request(text)
        if verdict is not None:
            return verdict, [], 0.0
        screen = self.index.screen([text])
        if (match := screen.near_duplicate(0)) is not None:
            score, best = match
            return ("too_similar", f"ROUGE-L {score:.3f} with: {self.index.text(best)}"), [], 0.0
        if stable_id("i", text) in self.ids:
            return ("duplicate", "the same instruction is in the pool"), [], 0.0
        top = screen.most_similar(0, 10)
        similar = [Similar(instruction=self.index.text(j), score=round(s, 4)) for j, s in top]
        return None, similar, round(screen.mean_similarity(0), 4)

    def accept(
        self,
        piece: Piece,
        text: str,
        key: str,
        completion: Completion,
        similar: list[Similar],
        mean: float,
    ) -> None:
        """Instance set and classification first, the instruction last: a crash in between
        leaves records that nothing reads (filter and Pool.work start from instructions), and
        the segment is asked again from the cache."""
        cid = stable_id("i", text)
        self.sets.append(
            InstanceSet(
                id=cid,
                instruction=text,
                is_classification=False,
                prompt_kind=PROMPT_KIND,
                instances=[Instance(input="", output=piece.text)],
                raw=completion.text,
                finish_reason=completion.finish_reason,
                request=key,
            )
        )
        self.classes.append(
            Classification(
                id=cid,
                instruction=text,
                is_classification=False,
                answer=NOT_ASKED,
                request=key,
                preset="backtranslate",
            )
        )
        record = Backtranslated(
            id=cid,
            instruction=text,
            most_similar=similar,
            mean_similarity=mean,
            request=key,
            round=0,
            source=piece.source,
        )
        self.out.append(record)
        self.index.add(text)
        self.ids.add(cid)
        self.report.counts["accepted"] += 1

    @contextlib.contextmanager
    def files(self) -> Iterator[None]:
        """The pool files this worker appends to besides `out` (run_worker closes that one)."""
        with self.classes, self.sets, self.rejects:
            yield

    def close(self) -> None:
        for out in (self.out, self.classes, self.sets, self.rejects):
            out.close()


def worker(
    pool: Pool, llm: LLM, job: BacktranslateJob, seeds: list[SeedTask] | None = None
) -> BackTranslator:
    """The stage's worker over the pool as it stands (for the online stage and batch mode)."""
    template = load_template("backtranslate", job.prompts)
    seeds = pool_seeds(pool, job.seeds) if seeds is None else seeds
    with bulk_load():
        machine = list(pool.read(pool.instructions, MachineInstruction))
        return BackTranslator(pool, llm, template, job.stage, seeds, machine, job.seed)


def backtranslate(job: BacktranslateJob) -> BacktranslateReport:
    """Write an instruction for every segment of `job.source` not done by an earlier run."""
    template = load_template("backtranslate", job.prompts)
    pieces, report = plan(job.source, job.stage)
    pool = job.pool
    with pool.writing():
        seeds = pool_seeds(pool, job.seeds)
        done = done_segments(pool)
        pending = [p for p in pieces if p.id not in done]
        report.done_before = len(pieces) - len(pending)
        if not pending:
            return report
        with llm_session(pool, job.llm, STAGE) as llm:
            store_seeds(pool, seeds)
            bt = worker(pool, llm, job, seeds)
            report.usage = llm.usage
            bt.report = report
            entry = {
                STAGE: job.stage.model_dump(mode="json"),
                "source": str(job.source),
                "prompts": {template.name: template.sha256},
            }
            with bt.files():
                run_worker(job, llm, bt, pending, entry)
            report.warnings = backtranslate_warnings(report.counts, report.rejected, job.llm.api)
            return report
