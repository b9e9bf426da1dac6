"""The judge: a model asked about one instance with a rubric prompt, its reply read by the
rubric's parser, once more when it does not parse. `curate` (a 1-5 score) and `review` (the
paper's four questions) are two rubrics of it; any other is a template and a parser.

Requests go through the one LLM layer (cache, retries, budget, failures, batch mode), under
the judge's own settings (`JudgeSettings.llm`): its identity is its model and the rubric's
hash, so another model or rubric makes another set of verdicts, never an overwrite.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from selfinstruct.config import JudgeSettings
from selfinstruct.llm.client import LLM, Request
from selfinstruct.method.prompts import Template
from selfinstruct.models import Verdict, instance_id
from selfinstruct.stages.base import StageJob, StageReport, run_worker
from selfinstruct.store.cache import Completion
from selfinstruct.store.pool import JsonlAppender, Pool

T = TypeVar("T")
V = TypeVar("V", bound=Verdict)
RETRY_TEMPERATURE = 0.7  # an unparsed greedy reply would come back the same at temperature 0


@dataclass(frozen=True)
class Item:
    """One instance to judge, and where it came from (a pool task, or a file's record)."""

    id: str
    instruction: str
    input: str
    output: str
    task: str = ""
    is_classification: bool | None = None
    record: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def of(cls, instruction: str, given: str, output: str, **more: Any) -> Item:
        return cls(instance_id(instruction, given, output), instruction, given, output, **more)

    def fields(self) -> dict[str, Any]:
        """The verdict record's copy of the instance."""
        return {
            "id": self.id,
            "task": self.task,
            "is_classification": self.is_classification,
            "instruction": self.instruction,
            "input": self.input,
            "output": self.output,
        }


@dataclass
class Asked(Generic[T]):
    """The reply that decides (the retry's after an unparsed one) and what the parser read."""

    key: str
    completion: Completion | None
    value: T | None


def identity(model: str, rubric: Template) -> str:
    """ "gpt-4o@3f2a9c1b7d20": a judge is its model and its rubric."""
    return f"{model}@{rubric.sha256[:12]}"


class Judge(Generic[T]):
    """One rubric's requests and replies; the caller records the verdicts."""

    def __init__(
        self,
        llm: LLM,
        rubric: Template,
        parse: Callable[[str], T | None],
        settings: JudgeSettings,
    ) -> None:
        self.llm, self.rubric, self.parse, self.settings = llm, rubric, parse, settings
        self.identity = identity(llm.settings.model, rubric)
        self.retried = 0

    def build(self, item: Item, retry: bool = False) -> Request:
        """The request for one instance (the retry samples, so it has a key of its own)."""
        prompt = self.rubric.render(
            instruction=item.instruction, input=item.input, output=item.output
        )
        params: dict[str, Any] = {"max_tokens": self.settings.max_tokens}
        if retry:
            return self.llm.request(prompt, {**params, "temperature": RETRY_TEMPERATURE}, sample=1)
        return self.llm.request(prompt, {**params, "temperature": 0.0})

    async def ask(self, item: Item) -> Asked[T]:
        req = self.build(item)
        completion = await self.llm.complete(req)
        if completion is not None and (value := self.parse(completion.text)) is not None:
            return Asked(req.key, completion, value)
        if completion is not None:
            self.retried += 1
            retry = self.build(item, retry=True)
            if second := await self.llm.complete(retry):
                return Asked(retry.key, second, self.parse(second.text))
        return Asked(req.key, completion, None)

    def chain(
        self, item: Item, cached: Callable[[str], Completion | None]
    ) -> tuple[Request, Asked[T]]:
        """Batch mode: the request whose reply decides (the retry after an unparsed one) and
        what the cache holds for it (completion None: still to be sent)."""
        req = self.build(item)
        got = cached(req.key)
        if got is not None and (value := self.parse(got.text)) is not None:
            return req, Asked(req.key, got, value)
        if got is not None:
            req = self.build(item, retry=True)
            got = cached(req.key)
        value = None if got is None else self.parse(got.text)
        return req, Asked(req.key, got, value)


class JudgeWorker(Generic[T, V]):
    """A judge as a per-instance stage (stages.base.run_worker): ask, then append a verdict."""

    def __init__(
        self,
        judge: Judge[T],
        out: Path,
        verdict: Callable[[Item, Asked[T], dict[str, Any]], V],
        report: StageReport,
    ) -> None:
        self.judge, self.verdict, self.report = judge, verdict, report
        self.out = JsonlAppender(out)
        self.on_done: Callable[[V], object] = lambda record: None

    def build(self, item: Item) -> Request:
        return self.judge.build(item)

    async def ask(self, item: Item) -> Asked[T]:
        return await self.judge.ask(item)

    def record(self, item: Item, asked: Asked[T]) -> None:
        if asked.completion is None:
            self.report.counts["failed"] += 1  # not recorded: the next run asks again
            return
        self.report.counts["judged" if asked.value is not None else "unparsed"] += 1
        common = {
            **item.fields(),
            "judge": self.judge.identity,
            "reply": asked.completion.text,
            "request": asked.key,
        }
        record = self.verdict(item, asked, common)
        self.out.append(record)
        self.on_done(record)


class JudgedJob(Protocol):
    """What a rubric's command asks of its job (CurateJob, ReviewJob)."""

    pool: Pool
    judge: JudgeSettings
    prompts: Path | None
    progress: bool


def run_judge(
    stage: str, job: JudgedJob, llm: LLM, worker: JudgeWorker[Any, Any], pending: list[Item]
) -> None:
    """Run a rubric's worker over `pending` (run_worker: progress, request window, signals),
    recording the stage with the judge's settings, identity and prompt."""
    judge = worker.judge
    entry = {
        stage: job.judge.model_dump(mode="json", exclude={"api_key"}),
        "judge": judge.identity,
        "prompts": {judge.rubric.name: judge.rubric.sha256},
    }
    stage_job = StageJob(job.pool, llm.settings, job.judge, job.prompts, job.progress)
    run_worker(stage_job, llm, worker, pending, entry)
    worker.report.counts["retried"] += judge.retried


def verdicts(pool: Pool, path: Path, model: type[V], judge: str) -> dict[str, V]:
    """The verdicts of one judge in a pool file, by instance id (the first one counts)."""
    found: dict[str, V] = {}
    for rec in pool.read(path, model):
        if rec.judge == judge:
            found.setdefault(rec.id, rec)
    return found


def latest_judge(pool: Pool, path: Path, model: type[V]) -> str | None:
    """The judge of the last verdict written to a pool file (None: no verdicts yet)."""
    last = None
    for rec in pool.read(path, model):
        last = rec.judge
    return last


def unique(items: Iterable[Item]) -> list[Item]:
    """Each instance once (the same text in two tasks is one verdict), in order."""
    seen: dict[str, Item] = {}
    for item in items:
        seen.setdefault(item.id, item)
    return list(seen.values())
