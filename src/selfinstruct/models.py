"""Pydantic models of every record that crosses a file boundary."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
)

from selfinstruct.pricing import Prices, cost

_SPACES = re.compile(r"\s+")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _encodable(value: str) -> str:
    """Text that a UTF-8 file can hold: a JSON escape of half an emoji ("\\ud83c") cannot."""
    if found := _LONE_SURROGATE.search(value):
        raise ValueError(
            f"holds a lone surrogate (\\u{ord(found.group()):04x} at character {found.start()}),"
            " half of a character that UTF-8 cannot store; fix that escape"
        )
    return value


Text = Annotated[str, AfterValidator(_encodable)]  # for text that users write


def replace_lone_surrogates(text: str) -> str:
    """The text with U+FFFD for each lone surrogate, so that UTF-8 can hold it."""
    return _LONE_SURROGATE.sub("\ufffd", text)


def normalize(text: str) -> str:
    """Lowercase and collapse whitespace: the identity of an instruction."""
    return _SPACES.sub(" ", text).strip().lower()


def stable_id(prefix: str, text: str) -> str:
    """A short id derived from the normalised text, the same on every machine and run."""
    return f"{prefix}-{hashlib.sha256(normalize(text).encode()).hexdigest()[:16]}"


class Record(BaseModel):
    """A pool record: unknown keys are ignored so newer pools stay readable."""

    model_config = ConfigDict(extra="ignore")


class Instance(Record):
    input: Text = ""
    output: Text


class SeedTask(Record):
    """A seed task in the reference schema."""

    id: Text
    name: Text = ""
    instruction: Text
    instances: list[Instance] = Field(min_length=1)
    is_classification: bool | None = None

    @field_validator("instruction")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value


class AlpacaSeed(Record):
    """A seed task as an Alpaca-style line."""

    instruction: Text
    input: Text = ""
    output: Text

    def to_seed(self) -> SeedTask:
        return SeedTask(
            id=stable_id("seed", self.instruction),
            instruction=self.instruction,
            instances=[Instance(input=self.input, output=self.output)],
        )


class Similar(Record):
    instruction: str
    score: float


class MachineInstruction(Record):
    """An accepted machine-generated instruction."""

    id: str
    instruction: str
    most_similar: list[Similar] = []
    mean_similarity: float | None = None  # mean ROUGE-L against the pool (None: older pools)
    request: str
    round: int  # stage 1's request round; for an evolved instruction, its evolution round
    parent: str | None = None  # `evolve`: the id of the instruction it was rewritten from
    operation: str | None = None  # `evolve`: constraints, deepen, concretize, breadth, harder

    @model_serializer(mode="wrap")
    def _lineage_when_evolved(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Stage 1's lines stay as they were: the lineage keys only on evolved instructions."""
        data: dict[str, Any] = handler(self)
        if self.parent is None:
            data.pop("parent", None)
            data.pop("operation", None)
        return data


class Source(Record):
    """Where a backtranslated answer came from: a file, its record, the segment's offset."""

    file: str
    record: int | None = None  # JSONL line, JSON list item, Parquet row (from 1); None: text file
    offset: int  # character offset of the segment in the record's text (or the file's)
    segment: str  # the segment's stable id


class Backtranslated(MachineInstruction):
    """An instruction written for an existing answer (backtranslate); in instructions.jsonl."""

    source: Source | None = None  # None: one from stage 1 (read through this model)


class BacktranslateReject(Record):
    """A segment whose instruction was not kept, with the rule that dropped it."""

    id: str  # the segment's id
    instruction: str
    reason: str
    detail: str = ""
    request: str
    source: Source


class RejectedInstruction(Record):
    """A generated candidate that a filter dropped, with the reason."""

    id: str
    instruction: str
    reason: str
    detail: str = ""
    request: str


class Failure(Record):
    """A request that still failed after its retries."""

    stage: str
    request: str
    error: str
    attempts: int
    time: float


NOT_ASKED = "(backtranslated: not a classification task, not asked)"  # Classification.answer


class Classification(Record):
    """Stage 2's answer for one machine instruction; None when the reply was neither Yes nor No."""

    id: str
    instruction: str
    is_classification: bool | None
    answer: str
    request: str
    # who wrote this record instead of stage 2 ("alpaca": the recipe has none; "backtranslate":
    # a text's pair is no classification task); None: stage 2 asked
    preset: str | None = None


class InstanceSet(Record):
    """Stage 3's instances for one instruction, with the raw reply for stage 4 and for audits."""

    id: str
    instruction: str
    is_classification: bool | None  # None: not asked (the alpaca preset)
    prompt_kind: str  # "output_first" | "input_first" | "alpaca" (written with the task)
    instances: list[Instance]
    truncated: Instance | None = None  # the cut-off last instance of a length-capped reply
    raw: str
    finish_reason: str
    request: str


class Distilled(Record):
    """A teacher's answer to one (instruction, input), a line of POOL/distilled.jsonl."""

    id: str  # distill_id(teacher, instruction, input)
    teacher: str  # the model, and the system prompt's hash when there is one
    instruction: str
    input: str = ""
    original: str | None = None  # the output it replaces (None: not known)
    output: str
    model: str  # as the server named it in its reply
    finish_reason: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    request: str


def teacher_name(model: str, system: str | None) -> str:
    """The key of a set of answers: the model, and which system prompt it was given."""
    if not system:
        return model
    return f"{model}+system-{hashlib.sha256(system.encode()).hexdigest()[:8]}"


def distill_id(teacher: str, instruction: str, given: str) -> str:
    text = json.dumps([teacher, instruction, given], ensure_ascii=False)
    return f"d-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


class BatchRequest(Record):
    """One request of a batch file as kept in POOL/batch_files: the Batch API line and its meta."""

    custom_id: str  # the request's cache key
    stage: str
    url: str
    body: dict[str, Any]
    meta: dict[str, Any] = {}


class BatchEvent(Record):
    """A state change of one batch file, a line of batches.jsonl; the last line per file wins."""

    file: str  # selfinstruct-<stage>-<hash of custom_ids>.jsonl, the same name on the server
    stage: str
    state: str  # written, uploading, uploaded, creating, submitted, collected, exported, imported
    requests: int
    endpoint: str
    target: int | None = None  # stage 1: the pool size the requests were made for
    file_id: str | None = None
    batch_id: str | None = None
    status: str | None = None  # the server's status when collected
    done: int = 0
    failed: int = 0
    error: str = ""
    time: float = 0.0


class ResultBody(Record):
    """The response of one line of a batch output file."""

    status_code: int
    request_id: str = ""
    body: dict[str, object] | None = None


class ResultLine(Record):
    """A Batch API output or error line (also what `vllm run-batch -o` writes)."""

    custom_id: str
    response: ResultBody | None = None
    error: object = None  # {"code", "message"} from OpenAI; vLLM may give a string


class Tokens(Protocol):
    """What a response's usage says (a cache Completion)."""

    @property
    def prompt_tokens(self) -> int: ...

    @property
    def completion_tokens(self) -> int: ...

    @property
    def cached_tokens(self) -> int: ...


@dataclass
class Usage:
    """What a stage spent; summed into the run manifest."""

    requests: int = 0
    cached: int = 0
    retries: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # of prompt_tokens, those read from the server's prompt cache
    cost: float | None = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    batched: int = 0  # of `requests`, those answered through a batch (at the batch price)
    dropped: dict[str, str] = field(default_factory=dict)  # parameters the server refused

    def add(self, completion: Tokens, prices: Prices | None, batch: bool = False) -> None:
        self.requests += 1
        self.batched += batch
        self.prompt_tokens += completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens
        self.cached_tokens += completion.cached_tokens
        tokens = (completion.prompt_tokens, completion.completion_tokens, completion.cached_tokens)
        spent = cost(prices, *tokens, batch=batch)
        self.cost = None if spent is None or self.cost is None else self.cost + spent


class Drops:
    """The one way a rule drops a record (as datatrove's BaseFilter.run): count the reason and
    keep the record, which names it, in the stage's rejects file. Stage 1's filters and stage
    4's rules both go through it."""

    def __init__(self, counts: Counter[str], write: Callable[[Any], object]) -> None:
        self.counts, self.write = counts, write

    def __call__(self, reason: str, record: Any) -> None:
        self.counts[reason] += 1
        self.write(record)


def instance_id(instruction: str, given: str, output: str) -> str:
    """The id of one (instruction, input, output): what a judge's verdict is kept under, the
    same in a pool, a dataset file or an export of either."""
    text = json.dumps([normalize(instruction), given.strip(), output.strip()], ensure_ascii=False)
    return f"x-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


class Verdict(Record):
    """What a judge said of one instance (curation.jsonl, review.jsonl); one per (id, judge)."""

    id: str  # instance_id
    judge: str  # model@rubric sha256[:12]: another model or rubric is another verdict
    task: str = ""  # the pool instruction's id ("" for a record of a file)
    is_classification: bool | None = None
    instruction: str
    input: str = ""
    output: str
    reply: str
    request: str


class Curation(Verdict):
    """`curate`: a 1-5 score (None: the reply had none, twice) and the judge's reason."""

    score: int | None
    reason: str = ""


class Review(Verdict):
    """`review`: yes/no to the paper's four questions (None: unparsed, twice), with reasons."""

    answers: list[bool] | None
    reasons: list[str] = []


def prompt_id(instruction: str, given: str) -> str:
    """The id of one (instruction, input) asked for preference candidates."""
    text = json.dumps([normalize(instruction), given.strip()], ensure_ascii=False)
    return f"p-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


class Candidate(BaseModel):
    """One candidate answer of `preferences` and the judge's additive score (None: no score
    in its reply, even asked twice)."""

    text: str
    finish_reason: str
    request: str  # the generator's cache key
    score: int | None
    reason: str = ""
    reply: str = ""  # the judge's reply
    judge_request: str = ""


class Preference(Record):
    """`preferences` (POOL/preferences.jsonl): one prompt's candidates, their scores and the
    pair kept; one per (prompt id, generator, judge, candidates, margin)."""

    id: str  # prompt_id
    generator: str  # the model that wrote the candidates
    judge: str  # model@rubric sha256[:12]
    candidates_asked: int
    margin: int
    instruction: str
    input: str = ""
    candidates: list[Candidate]
    outcome: str  # pair | tie | margin | unscored (method/preference.py)
    chosen: str | None = None
    rejected: str | None = None
    chosen_score: int | None = None
    rejected_score: int | None = None

    def setting(self) -> tuple[str, str, int, int]:
        return (self.generator, self.judge, self.candidates_asked, self.margin)
