"""`preferences`: Self-Rewarding's preference pairs (Yuan et al., 2024). For each prompt of the
dataset the generator writes `candidates` answers, the judge of `curate` scores each with an
additive rubric (prompts/judge_additive.txt), and the best and the worst become a pair when
their scores differ by at least `margin` (method/preference.py; docs/preferences.md).

Each candidate has its own request and cache key (`seed` = its index); the missing ones of a
prompt are asked in one request with `n` where the server gives several choices, else one by
one (`LLM.complete_n`). The judge's requests are curate's (`stages/judge.Judge`). Everything
goes through the one LLM layer. One record per prompt and setting (generator, judge,
candidates, margin) goes to POOL/preferences.jsonl; a prompt with a failed request is not
recorded, so the next run asks for it again and the cache answers what was already paid for.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from selfinstruct.config import JudgeSettings, Settings
from selfinstruct.errors import ConfigError
from selfinstruct.llm.client import LLM, Request
from selfinstruct.method.judging import parse_reason, parse_score
from selfinstruct.method.preference import OUTCOMES, PAIR, choose
from selfinstruct.method.prompts import load_template
from selfinstruct.models import Candidate, Preference, Usage, prompt_id
from selfinstruct.stages.base import StageJob, StageReport, llm_session, run_worker
from selfinstruct.stages.distill import check_api, user_turn
from selfinstruct.stages.judge import Asked, Item, Judge
from selfinstruct.stages.yields import preference_warnings
from selfinstruct.store import manifest
from selfinstruct.store.cache import Completion
from selfinstruct.store.pool import JsonlAppender, Pool, iter_jsonl

STAGE = "preferences"
JUDGE_STAGE = "preferences_judge"
RUBRIC = "judge_additive"
T = TypeVar("T")


@dataclass(frozen=True)
class PreferenceSettings:
    candidates: int = 4
    margin: int = 1
    temperature: float = 0.8  # candidates must differ: sampled, never greedy
    top_p: float = 0.95
    max_tokens: int = 1024
    use_n: bool = True  # one request with `n` for a prompt's candidates (LLM.complete_n)


@dataclass(frozen=True)
class Prompt:
    id: str
    instruction: str
    input: str = ""


@dataclass
class PreferencesJob:
    pool: Pool
    llm: Settings  # the generator's; the judge's are `judge.llm(llm)`
    judge: JudgeSettings
    settings: PreferenceSettings = field(default_factory=PreferenceSettings)
    prompts: Path | None = None
    progress: bool = True


@dataclass
class PreferencesReport(StageReport):
    generator: str = ""
    judge: str = ""
    total: int = 0  # prompts of the dataset
    outcomes: dict[str, int] = field(default_factory=dict)  # all of this setting's records
    judge_usage: Usage = field(default_factory=Usage)


Scored = tuple[Request, Completion | None, Asked[int] | None]


class PreferenceWorker:
    """Per prompt: the candidates (LLM.complete_n), the judge's score of each, one record."""

    def __init__(
        self, llm: LLM, judge: Judge[int], settings: PreferenceSettings, pool: Pool
    ) -> None:
        self.llm, self.judge, self.settings = llm, judge, settings
        self.out = JsonlAppender(pool.preferences)
        self._report = PreferencesReport(usage=llm.usage, judge_usage=judge.llm.usage)
        self.on_done: Callable[[Any], object] = lambda record: None

    @property
    def report(self) -> PreferencesReport:
        return self._report

    def candidate(self, p: Prompt, k: int) -> Request:
        s = self.settings
        params = {"max_tokens": s.max_tokens, "temperature": s.temperature, "top_p": s.top_p}
        return self.llm.request(user_turn(p.instruction, p.input), {**params, "seed": k}, sample=k)

    def build(self, p: Prompt) -> Request:
        return self.candidate(p, 0)

    async def ask(self, p: Prompt) -> list[Scored]:
        reqs = [self.candidate(p, k) for k in range(self.settings.candidates)]
        if self.settings.use_n:
            answers = await self.llm.complete_n(reqs)
        else:
            answers = await every(self.llm.complete(req) for req in reqs)

        async def judged(req: Request, got: Completion | None) -> Scored:
            if got is None:
                return req, None, None
            item = Item.of(p.instruction, p.input, got.text.strip())
            return req, got, await self.judge.ask(item)

        return await every(judged(r, got) for r, got in zip(reqs, answers, strict=True))

    def record(self, p: Prompt, scored: list[Scored]) -> None:
        if any(
            got is None or asked is None or asked.completion is None for _, got, asked in scored
        ):
            self.report.counts["failed"] += 1  # not recorded: the next run asks again
            return
        candidates = [
            Candidate(
                text=got.text.strip(),
                finish_reason=got.finish_reason,
                request=req.key,
                score=asked.value,
                reason=parse_reason(asked.completion.text),
                reply=asked.completion.text,
                judge_request=asked.key,
            )
            for req, got, asked in scored
            if got is not None and asked is not None and asked.completion is not None
        ]
        record = preference(
            p, candidates, self.llm.settings.model, self.judge.identity, self.settings
        )
        self.report.counts[record.outcome] += 1
        self.report.counts["unscored_candidates"] += sum(c.score is None for c in candidates)
        self.out.append(record)
        self.on_done(record)


def preference(
    p: Prompt, candidates: list[Candidate], generator: str, judge: str, s: PreferenceSettings
) -> Preference:
    choice = choose([c.score for c in candidates], s.margin)
    pair: dict[str, Any] = {}
    if choice.outcome == PAIR and choice.chosen is not None and choice.rejected is not None:
        best, worst = candidates[choice.chosen], candidates[choice.rejected]
        pair = {
            "chosen": best.text,
            "rejected": worst.text,
            "chosen_score": best.score,
            "rejected_score": worst.score,
        }
    return Preference(
        id=p.id,
        generator=generator,
        judge=judge,
        candidates_asked=s.candidates,
        margin=s.margin,
        instruction=p.instruction,
        input=p.input,
        candidates=candidates,
        outcome=choice.outcome,
        **pair,
    )


async def every(calls: Iterable[Awaitable[T]]) -> list[T]:
    """All results; when one raises (a budget cap), the others still finish first."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results  # type: ignore[return-value]


def dataset_prompts(pool: Pool) -> list[Prompt]:
    """Each (instruction, input) of POOL/dataset.jsonl once: what stage 4 kept."""
    if not pool.dataset.exists():
        raise ConfigError(f"{pool.dataset} does not exist yet: run `selfinstruct filter` first")
    found: dict[str, Prompt] = {}
    for _, row in iter_jsonl(pool.dataset):
        instruction, given = str(row.get("instruction") or ""), str(row.get("input") or "")
        if instruction.strip():
            key = prompt_id(instruction, given)
            found.setdefault(key, Prompt(key, instruction, given))
    return list(found.values())


def records(pool: Pool, setting: tuple[str, str, int, int]) -> dict[str, Preference]:
    """The records of one setting, by prompt id (the first one counts)."""
    found: dict[str, Preference] = {}
    for rec in pool.read(pool.preferences, Preference):
        if rec.setting() == setting:
            found.setdefault(rec.id, rec)
    return found


def judge_llm(generator: LLM, settings: Settings) -> LLM:
    """The judge's client on the generator's cache and failures file; on the same server it
    shares the generator's flow (limit, breaker, budget caps), elsewhere it has its own."""
    same = settings.base_url == generator.settings.base_url
    flow = generator.flow if same else None
    return LLM(settings, generator.cache, generator.failures, JUDGE_STAGE, flow=flow)


def preferences(job: PreferencesJob) -> PreferencesReport:
    """Ask, score and pair every dataset prompt this setting has no record for."""
    check_api(job.llm)
    judge_settings = job.judge.llm(job.llm)
    template = load_template(RUBRIC, job.prompts)
    pool = job.pool
    with pool.writing():
        prompts = dataset_prompts(pool)
        with llm_session(pool, job.llm, STAGE) as llm:
            judged = judge_llm(llm, judge_settings)
            judge = Judge(judged, template, parse_score, job.judge)
            worker = PreferenceWorker(llm, judge, job.settings, pool)
            report = worker.report
            report.generator, report.judge, report.total = (
                job.llm.model,
                judge.identity,
                len(prompts),
            )
            setting = (report.generator, report.judge, job.settings.candidates, job.settings.margin)
            done = records(pool, setting)
            pending = [p for p in prompts if p.id not in done]
            report.done_before = len(prompts) - len(pending)
            entry = {
                STAGE: {**vars(job.settings), "judge": judge.identity},
                "prompts": {template.name: template.sha256},
            }
            stage = StageJob(pool, job.llm, job.settings, job.prompts, job.progress)
            run_worker(stage, llm, worker, pending, entry, more=(judged,))
            report.counts["retried"] += judge.retried
            if report.pending:
                judge_entry = {"judge": judge.identity, "settings": judge_settings.public()}
                manifest.record_stage(pool, JUDGE_STAGE, judge_entry, judged.usage)
        report.outcomes = outcomes(prompts, records(pool, setting))
    if report.pending:
        this_run = {name: report.counts[name] for name in OUTCOMES}
        unscored = report.counts["unscored_candidates"]
        report.warnings += preference_warnings(this_run, unscored)
    return report


def outcomes(prompts: list[Prompt], found: dict[str, Preference]) -> dict[str, int]:
    counts = Counter({name: 0 for name in OUTCOMES})
    for p in prompts:
        if (rec := found.get(p.id)) is not None:
            counts[rec.outcome] += 1
    return dict(counts)
