"""Stanford Alpaca's recipe, its pure parts: the few-shot listing of whole tasks, the reply
parser, and the longer blacklist (docs/alpaca.md).

One request shows a few seed tasks as numbered "Instruction:" / "Input:" / "Output:" blocks
separated by "###" and ends at the next "N. Instruction:"; the model writes whole tasks from
there. The parser reads that layout as chat and base models bend it: numbers or none, markdown
labels and headings, fences, a preamble and closing remarks, "<noinput>", a cut-off last task.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from selfinstruct.method.filters import BLACKLIST
from selfinstruct.method.parsing import (
    _FENCE,
    _PREAMBLE,
    _RULE,
    _is_none,
    _is_remark,
    _tidy,
    clean_item,
)

ALPACA_BLACKLIST = (*BLACKLIST, "video", "audio", "music", "flowchart", "diagram")
NO_INPUT = "<noinput>"

# "4. Instruction: ...", "**Instruction:**", "- **4. Input**:", "Output 4:", "### Output"
_FIELD = re.compile(
    r"^\s*(?:[#>]+\s*|[-*+]\s+)*(?P<e>\*\*|__)?\s*(?:(?P<n>\d{1,3})\s*[.)]\s*)?"
    r"(?P<name>instruction|input|output)\s*(?P<m>\d{1,3})?\s*(?:\*\*|__)?\s*(?::|$)"
    r"\s*(?:\*\*|__)?\s*(?P<value>.*)$",
    re.IGNORECASE,
)
# "Task 5", "### Task 5:", "**Task 5**" on a line of its own: a block's header.
_HEADER = re.compile(
    r"^\s*(?:[#>]+\s*)?(?:\*\*|__)?\s*task\s*#?\s*(?P<n>\d{1,3})\s*[:.)-]?\s*(?:\*\*|__)?\s*$",
    re.IGNORECASE,
)
_SEPARATOR = re.compile(r"^\s*#{3,}\s*$")


@dataclass(frozen=True)
class Shown:
    """A task as the prompt shows it."""

    instruction: str
    input: str
    output: str


@dataclass(frozen=True)
class Task:
    """A whole task read from a reply: its number (None when unnumbered) and its text."""

    number: int | None
    instruction: str
    input: str
    output: str
    raw: str


def listing(tasks: list[Shown]) -> str:
    """The numbered blocks of the prompt, each after a "###" line."""
    blocks = []
    for i, task in enumerate(tasks, 1):
        given = task.input.strip() or NO_INPUT
        blocks.append(
            f"###\n{i}. Instruction: {' '.join(task.instruction.split())}\n"
            f"{i}. Input:\n{given}\n{i}. Output:\n{task.output.strip()}"
        )
    return "\n".join(blocks)


class _Block:
    def __init__(self, number: int | None) -> None:
        self.number = number
        self.fields: dict[str, list[str]] = {}
        self.raw: list[str] = []


def parse_tasks(text: str, first: int, last: int, truncated: bool) -> list[Task]:
    """Whole tasks numbered `first` to `last` (unnumbered ones count as asked), in order.

    A block needs an instruction and an output; a missing input is read as none. A chat reply
    may write the first instruction without its label, right after the prompt's
    "N. Instruction:". When the reply stopped for length, its last block is dropped.
    """
    blocks, lead = _blocks(text)
    if blocks and "instruction" not in blocks[0].fields and lead:
        blocks[0].fields["instruction"] = lead
    if truncated and blocks:
        blocks.pop()
    tasks = []
    for i, block in enumerate(blocks):
        task = _task(block, last=i == len(blocks) - 1)
        if task is not None and (task.number is None or first <= task.number <= last):
            tasks.append(task)
    return tasks


def _blocks(text: str) -> tuple[list[_Block], list[str]]:
    """The reply's blocks, and the text before the first field that is not a preamble."""
    blocks: list[_Block] = []
    lead: list[str] = []
    active: list[str] | None = None
    closed = True  # the next field opens a block
    for line in text.splitlines():
        if _FENCE.match(line) or _RULE.match(line) or _SEPARATOR.match(line):
            active, closed = None, True
            continue
        if header := _HEADER.match(line):
            blocks.append(_Block(int(header.group("n"))))
            active, closed = None, False
            continue
        field = _field(line)
        if field is None:
            if active is not None:
                active.append(line)
                blocks[-1].raw.append(line)
            elif not blocks and line.strip() and not _PREAMBLE.match(line.strip().lstrip("*_ ")):
                lead.append(line)
            continue
        name, number, value = field
        if closed or _opens(blocks[-1], name):
            blocks.append(_Block(number))
        block = blocks[-1]
        block.number = block.number if block.number is not None else number
        active, closed = block.fields.setdefault(name, [value]), False
        block.raw.append(line)
    return blocks, lead


def _opens(block: _Block, name: str) -> bool:
    """Whether a field starts the next task: an instruction, a repeated field, or an input
    after an output."""
    fields = block.fields
    return (
        name == "instruction"
        and bool(fields)
        or name in fields
        or (name == "input" and "output" in fields)
    )


def _field(line: str) -> tuple[str, int | None, str] | None:
    match = _FIELD.match(line)
    if match is None:
        return None
    number = match.group("n") or match.group("m")
    return match.group("name").lower(), int(number) if number else None, match.group("value")


def _task(block: _Block, last: bool) -> Task | None:
    fields = block.fields
    if "instruction" not in fields or "output" not in fields:
        return None
    instruction = clean_item(" ".join(fields["instruction"]))
    given = _tidy("\n".join(fields.get("input", [])), last=False)
    output = _tidy("\n".join(fields["output"]), last)
    if instruction is None or _is_remark(instruction):
        return None
    given = "" if _is_none(given) else given
    return Task(block.number, instruction, given, output, "\n".join(block.raw))
