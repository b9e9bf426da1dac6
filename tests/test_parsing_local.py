"""The parsers over real replies of small local models (tests/fixtures/local_replies/, written
by `python tests/local_replies.py --write`): each reply parses as it did when it was reviewed,
and what a parser takes out of a reply is really in it. A reply marked `known_wrong` holds the
right parse, and the test expects the parser to miss it until it is fixed."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest

from tests.local_replies import OUT, parse

REPLIES = [
    pytest.param(
        reply,
        id=f"{path.stem}-{i}-{reply['stage']}{reply['kind'] and '-' + reply['kind']}",
        # strict: when the parser gets these right, the mark must go
        marks=[pytest.mark.xfail(strict=True, reason=reply["known_wrong"])]
        if "known_wrong" in reply
        else [],
    )
    for path in sorted(OUT.glob("*.json"))
    for i, reply in enumerate(json.loads(path.read_text()))
]


def test_the_fixtures_cover_every_prompt_and_api() -> None:
    first = [cast(dict[str, Any], r.values[0]) for r in REPLIES]
    seen = {(r["api"], r["stage"], r["kind"]) for r in first}
    for stage, kind in [("generate", ""), ("classify", ""), ("instances", "output_first")]:
        assert {("chat", stage, kind), ("completions", stage, kind)} <= seen
    # SmolLM2 via chat called every instruction a classification task: no input-first reply
    assert ("completions", "instances", "input_first") in seen
    assert len(REPLIES) >= 36


@pytest.mark.parametrize("reply", REPLIES)
def test_a_real_reply_parses_as_reviewed(reply: dict[str, Any]) -> None:
    parsed = parse(reply["stage"], reply["kind"], reply["api"], reply["meta"], reply)
    assert parsed == reply["parsed"]
    text = " ".join(reply["text"].split())
    if reply["stage"] == "generate":
        assert all(" ".join(item.split()) in text for item in parsed)
    if reply["stage"] == "instances":
        for given, output in parsed:
            assert " ".join(given.split())[:20] in text.replace('"', "")
            assert " ".join(output.split())[:20] in text
