"""`export --format dpo` and `dpo-chat`: the preference pairs of `preferences` in TRL's
preference formats (standard: prompt, chosen and rejected strings; conversational: each a
list of messages), from the setting last written to POOL/preferences.jsonl."""

from __future__ import annotations

from typing import Any, NamedTuple

from selfinstruct.errors import ConfigError
from selfinstruct.method.preference import PAIR
from selfinstruct.models import Preference
from selfinstruct.store.pool import Pool

FORMATS = ("dpo", "dpo-chat")


class Pair(NamedTuple):
    id: str
    instruction: str
    input: str
    chosen: str
    rejected: str


def load_pairs(pool: Pool) -> tuple[list[Pair], str]:
    """The kept pairs of the last setting written (generator, judge, candidates, margin), in
    the file's order, and a line naming that setting."""
    records = list(pool.read(pool.preferences, Preference))
    if not records:
        raise ConfigError(
            f"no preference pairs at {pool.preferences} - run `selfinstruct preferences` first"
        )
    setting = records[-1].setting()
    seen: set[str] = set()
    pairs = []
    for rec in records:
        if rec.setting() != setting or rec.id in seen:
            continue
        seen.add(rec.id)
        if rec.outcome == PAIR and rec.chosen is not None and rec.rejected is not None:
            pairs.append(Pair(rec.id, rec.instruction, rec.input, rec.chosen, rec.rejected))
    generator, judge, candidates, margin = setting
    return pairs, f"{generator} x{candidates}, judge {judge}, margin {margin}"


def user_text(pair: Pair) -> str:
    """The prompt as the generator saw it: the instruction, then the input after a blank line."""
    return f"{pair.instruction}\n\n{pair.input}" if pair.input.strip() else pair.instruction


def dpo(pair: Pair, system: str | None) -> dict[str, Any]:
    return {"prompt": user_text(pair), "chosen": pair.chosen, "rejected": pair.rejected}


def dpo_chat(pair: Pair, system: str | None) -> dict[str, Any]:
    turns = [{"role": "system", "content": system}] if system else []
    return {
        "prompt": [*turns, {"role": "user", "content": user_text(pair)}],
        "chosen": [{"role": "assistant", "content": pair.chosen}],
        "rejected": [{"role": "assistant", "content": pair.rejected}],
    }


WRITERS = {"dpo": dpo, "dpo-chat": dpo_chat}
