"""Stage 3: inputs and outputs for each classified instruction (docs/method.md, stage 3).

Classification tasks are prompted output-first (a class label, then an input for it), so every
label gets an input; all other tasks input-first (an input, possibly none, then the output).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from selfinstruct.config import InstancesSettings
from selfinstruct.llm.client import LLM, Request
from selfinstruct.method.parsing import Example, parse_examples, parse_labelled
from selfinstruct.method.prompts import Template, load_template
from selfinstruct.models import Classification, Instance, InstanceSet
from selfinstruct.stages.base import (
    StageJob,
    StageReport,
    llm_session,
    run_worker,
)
from selfinstruct.stages.yields import instances_warnings
from selfinstruct.store.cache import Completion
from selfinstruct.store.pool import JsonlAppender, Pool

STAGE = "instances"
OUTPUT_FIRST, INPUT_FIRST = "output_first", "input_first"
# What a base model is given to continue from, and how its reply is read, per prompt kind.
LEAD = {OUTPUT_FIRST: "Class label:", INPUT_FIRST: "Example 1\n"}
PARSE: dict[str, Callable[[str, bool], list[Example]]] = {
    OUTPUT_FIRST: parse_labelled,
    INPUT_FIRST: parse_examples,
}


def prompt_kind(item: Classification) -> str:
    return OUTPUT_FIRST if item.is_classification else INPUT_FIRST


class InstanceWriter:
    def __init__(
        self, llm: LLM, templates: dict[str, Template], settings: InstancesSettings, out: Pool
    ) -> None:
        self.llm, self.templates, self.settings = llm, templates, settings
        self.out = JsonlAppender(out.instances)
        self.report = StageReport(usage=llm.usage)
        self.on_done: Callable[[InstanceSet], object] = lambda record: None

    def params(self, kind: str) -> dict[str, Any]:
        s = self.settings
        params: dict[str, Any] = {
            "max_tokens": s.max_tokens,
            "temperature": s.temperature,
            "presence_penalty": s.presence_penalty,
        }
        if self.llm.settings.api == "completions":
            extra = f"Example {s.max_instances + 1}"
            params["stop"] = ["Task:", extra] if kind == INPUT_FIRST else ["Task:"]
        return params

    def build(self, item: Classification) -> Request:
        """The request for one classified instruction; nothing is sent."""
        kind = prompt_kind(item)
        prompt = self.templates[kind].render(instruction=item.instruction)
        return self.llm.request(prompt, self.params(kind))

    async def ask(self, item: Classification) -> tuple[str, Completion | None]:
        req = self.build(item)
        return req.key, await self.llm.complete(req)

    def record(self, item: Classification, result: tuple[str, Completion | None]) -> None:
        key, completion = result
        if completion is None:
            self.report.counts["failed"] += 1  # not recorded: the next run asks again
            return
        kind = prompt_kind(item)
        text = completion.text
        if self.llm.settings.api == "completions":
            text = LEAD[kind] + text
        examples = PARSE[kind](text, False)
        cut = examples.pop() if examples and completion.finish_reason == "length" else None
        kept = examples  # all of them: stage 4 samples at most --max-instances per task
        self.report.counts[kind] += 1
        self.report.counts["instances"] += len(kept)
        if not kept:
            self.report.counts["no_instances_parsed"] += 1
            self.report.counts[f"{kind}_empty"] += 1
        if completion.finish_reason == "length":
            self.report.counts[f"{kind}_cut"] += 1
        record = InstanceSet(
            id=item.id,
            instruction=item.instruction,
            is_classification=bool(item.is_classification),
            prompt_kind=kind,
            instances=[Instance(input=e.input, output=e.output) for e in kept],
            truncated=Instance(input=cut.input, output=cut.output) if cut else None,
            raw=completion.text,
            finish_reason=completion.finish_reason,
            request=key,
        )
        self.out.append(record)
        self.on_done(record)


def instances(job: StageJob) -> StageReport:
    """Generate instances for every classified instruction that has none yet."""
    templates = {
        k: load_template(f"instances_{k}", job.prompts) for k in (OUTPUT_FIRST, INPUT_FIRST)
    }
    pool = job.pool
    with pool.writing():
        work = pool.work()
        done, pending = work.instances, work.without_instances
        if not pending:
            return StageReport(done_before=len(done))
        with llm_session(pool, job.llm, STAGE) as llm:
            worker = InstanceWriter(llm, templates, job.stage, pool)
            worker.report.done_before = len(done)
            prompts = {t.name: t.sha256 for t in templates.values()}
            entry = {STAGE: job.stage.model_dump(), "prompts": prompts}
            report = run_worker(job, llm, worker, pending, entry)
            report.warnings = instances_warnings(report.counts, job.llm.api)
            return report
