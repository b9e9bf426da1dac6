"""`distill`: a stronger teacher model answers every (instruction, input), as "Instruction
Tuning with GPT-4" regenerated Alpaca's outputs (docs/distill.md).

Each question is one chat request, the user turn joined as `export` joins it; the answer goes to
POOL/distilled.jsonl under an id of (teacher, instruction, input), so a re-run asks only what is
missing and another teacher (or system prompt) is another set. `filter --outputs distilled`
builds the dataset from the answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from selfinstruct.config import Settings
from selfinstruct.errors import ConfigError
from selfinstruct.llm.client import LLM, Request
from selfinstruct.models import Distilled, Instance, InstanceSet, distill_id, teacher_name
from selfinstruct.stages.base import StageJob, StageReport, llm_session, run_worker
from selfinstruct.store.cache import Completion
from selfinstruct.store.pool import JsonlAppender, Pool, bulk_load, iter_jsonl

STAGE = "distill"


@dataclass(frozen=True)
class Question:
    instruction: str
    input: str = ""
    original: str | None = None  # the output the answer replaces, when there is one


@dataclass(frozen=True)
class DistillSettings:
    system: str | None = None
    max_tokens: int = 2048
    temperature: float | None = None  # None: the server's default
    dataset_only: bool = False  # a pool's questions: only the rows of POOL/dataset.jsonl


def user_turn(instruction: str, given: str) -> str:
    """The instruction, and the input after a blank line when there is one (as `export`)."""
    return f"{instruction}\n\n{given}" if given.strip() else instruction


def check_api(llm: Settings) -> None:
    if llm.api != "chat":
        raise ConfigError("distill asks a chat model: drop --api completions")


class Distiller:
    """Asks the teacher one question at a time and appends its answer."""

    def __init__(self, llm: LLM, settings: DistillSettings, pool: Pool) -> None:
        self.llm, self.settings = llm, settings
        self.teacher = teacher_name(llm.settings.model, settings.system)
        self.out = JsonlAppender(pool.distilled)
        self.report = StageReport(usage=llm.usage)
        self.on_done: Callable[[Distilled], object] = lambda record: None

    def key(self, q: Question) -> str:
        return distill_id(self.teacher, q.instruction, q.input)

    def build(self, q: Question) -> Request:
        """The request for one question; nothing is sent."""
        params: dict[str, Any] = {"max_tokens": self.settings.max_tokens}
        if self.settings.temperature is not None:
            params["temperature"] = self.settings.temperature
        prompt = user_turn(q.instruction, q.input)
        return self.llm.request(prompt, params, system=self.settings.system)

    async def ask(self, q: Question) -> tuple[str, Completion | None]:
        req = self.build(q)
        return req.key, await self.llm.complete(req)

    def record(self, q: Question, result: tuple[str, Completion | None]) -> None:
        key, completion = result
        if completion is None:
            self.report.counts["failed"] += 1  # not recorded: the next run asks again
            return
        self.report.counts["answered"] += 1
        self.report.counts["cut"] += completion.finish_reason == "length"
        record = Distilled(
            id=self.key(q),
            teacher=self.teacher,
            instruction=q.instruction,
            input=q.input,
            original=q.original,
            output=completion.text.strip(),
            model=self.llm.settings.model,
            finish_reason=completion.finish_reason,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            request=key,
        )
        self.out.append(record)
        self.on_done(record)

    def missing(self, pool: Pool, questions: Iterable[Question]) -> list[Question]:
        """The questions this teacher has not answered, each (instruction, input) once."""
        done = {r.id for r in pool.read(pool.distilled, Distilled)}
        todo: dict[str, Question] = {}
        for q in questions:
            if (k := self.key(q)) not in done:
                todo.setdefault(k, q)
        return list(todo.values())


def pool_questions(pool: Pool, dataset_only: bool = False) -> list[Question]:
    """Every instance of the pool's instance sets (the latest set of each instruction), or
    only the dataset's rows (what stage 4 kept: fewer to pay for)."""
    if dataset_only:
        if not pool.dataset.exists():
            raise ConfigError(
                f"{pool.dataset} does not exist yet: run `selfinstruct filter`, or drop --dataset"
            )
        rows = (row for _, row in iter_jsonl(pool.dataset))
        return [Question(r["instruction"], r.get("input") or "", r.get("output")) for r in rows]
    with bulk_load():
        sets = {s.id: s for s in pool.read(pool.instances, InstanceSet)}
    return [
        Question(s.instruction, inst.input, inst.output)
        for s in sets.values()
        for inst in s.instances
    ]


@dataclass
class DistillJob(StageJob):
    """`selfinstruct distill`: the teacher is `llm`; `questions` None: the pool's instances."""

    questions: list[Question] | None = None


def distill(job: DistillJob, settings: DistillSettings) -> StageReport:
    """Answer every question the teacher has not answered yet."""
    check_api(job.llm)
    pool = job.pool
    with pool.writing():
        questions = job.questions
        if questions is None:
            questions = pool_questions(pool, settings.dataset_only)
        with llm_session(pool, job.llm, STAGE) as llm:
            worker = Distiller(llm, settings, pool)
            pending = worker.missing(pool, questions)
            worker.report.done_before = len({worker.key(q) for q in questions}) - len(pending)
            if not pending:
                return worker.report
            entry = {STAGE: {"teacher": worker.teacher, "max_tokens": settings.max_tokens}}
            return run_worker(job, llm, worker, pending, entry)


class Answers:
    """One teacher's answers, for `filter --outputs distilled` and the file mode."""

    def __init__(self, pool: Pool, teacher: str | None) -> None:
        records = list(pool.read(pool.distilled, Distilled))
        if not records:
            raise ConfigError(
                f"{pool.distilled}: no teacher's answers yet; run `selfinstruct distill --model M`"
            )
        known = list(dict.fromkeys(r.teacher for r in records))
        self.teacher = teacher or records[-1].teacher  # the last teacher asked
        if self.teacher not in known:
            raise ConfigError(
                f"{pool.distilled}: no answers from teacher {self.teacher!r}; "
                f"it holds: {', '.join(known)}"
            )
        self.by_question = {
            (r.instruction, r.input): r for r in records if r.teacher == self.teacher
        }

    def get(self, instruction: str, given: str) -> Distilled | None:
        return self.by_question.get((instruction, given))

    def swap(self, got: InstanceSet, drop: Callable[..., None]) -> InstanceSet:
        """The set with the teacher's outputs; an instance without a whole answer is dropped."""
        kept = []
        for inst in got.instances:
            answer = self.get(got.instruction, inst.input)
            if answer is None:
                drop("no_teacher_answer", inst=inst, detail=f"{self.teacher} has not answered it")
            elif answer.finish_reason == "length":
                cut = Instance(input=inst.input, output=answer.output)
                drop("teacher_answer_cut", inst=cut, detail="the answer stopped at max_tokens")
            else:
                kept.append(Instance(input=inst.input, output=answer.output))
        return got.model_copy(update={"instances": kept, "truncated": None})
