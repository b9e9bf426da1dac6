"""Stage 2: is each machine instruction a classification task? (docs/method.md, stage 2)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from selfinstruct.config import ClassifySettings
from selfinstruct.llm.client import LLM, Request
from selfinstruct.method.parsing import parse_yes_no
from selfinstruct.method.prompts import Template, load_template
from selfinstruct.models import Classification, MachineInstruction
from selfinstruct.stages.base import (
    StageJob,
    StageReport,
    llm_session,
    run_worker,
)
from selfinstruct.stages.yields import classify_warnings
from selfinstruct.store.cache import Completion
from selfinstruct.store.pool import JsonlAppender

STAGE = "classify"
RETRY_TEMPERATURE = 0.7  # an unparsed greedy answer would come back the same at temperature 0


class Classifier:
    def __init__(self, llm: LLM, template: Template, settings: ClassifySettings, out: Path) -> None:
        self.llm, self.template, self.settings = llm, template, settings
        self.out = JsonlAppender(out)
        self.report = StageReport(usage=llm.usage)
        self.on_done: Callable[[Classification], object] = lambda record: None

    def params(self, temperature: float) -> dict[str, Any]:
        params: dict[str, Any] = {
            "max_tokens": self.settings.max_tokens,
            "temperature": temperature,
        }
        if self.llm.settings.api == "completions":
            params["stop"] = ["\n", "Task:"]
        return params

    def build(self, item: MachineInstruction, retry: bool = False) -> Request:
        """The request for one instruction (the retry samples, so it has a key of its own)."""
        prompt = self.template.render(instruction=item.instruction)
        if retry:
            return self.llm.request(prompt, self.params(RETRY_TEMPERATURE), sample=1)
        return self.llm.request(prompt, self.params(0.0))

    async def ask(self, item: MachineInstruction) -> tuple[str, Completion | None]:
        """The answer; an unparsed one is asked once more, at a higher temperature."""
        req = self.build(item)
        completion = await self.llm.complete(req)
        if completion is not None and parse_yes_no(completion.text) is None:
            self.report.counts["retried"] += 1
            retry = self.build(item, retry=True)
            if second := await self.llm.complete(retry):
                req, completion = retry, second
        return req.key, completion

    def record(self, item: MachineInstruction, result: tuple[str, Completion | None]) -> None:
        key, completion = result
        if completion is None:
            self.report.counts["failed"] += 1  # not recorded: the next run asks again
            return
        answer = parse_yes_no(completion.text)
        verdict = {True: "yes", False: "no", None: "unparsed"}[answer]
        self.report.counts[verdict] += 1
        record = Classification(
            id=item.id,
            instruction=item.instruction,
            is_classification=answer,
            answer=completion.text,
            request=key,
        )
        self.out.append(record)
        self.on_done(record)


def classify(job: StageJob) -> StageReport:
    """Classify every machine instruction that has no classification yet."""
    template = load_template("classify", job.prompts)
    pool = job.pool
    with pool.writing():
        work = pool.work()
        done, pending = work.classes, work.unclassified
        if not pending:
            return StageReport(done_before=len(done))
        with llm_session(pool, job.llm, STAGE) as llm:
            worker = Classifier(llm, template, job.stage, pool.classifications)
            worker.report.done_before = len(done)
            entry = {STAGE: job.stage.model_dump(), "prompts": {template.name: template.sha256}}
            report = run_worker(job, llm, worker, pending, entry)
            report.warnings = classify_warnings(report.counts, job.llm.api)
            return report
