"""The share of prompt tokens a server with prompt caching reads from its cache, per stage.

    python -m bench.cache                  # 100 instructions, chat and completions APIs
    python -m bench.cache -n 200 --prompts my_prompts/

(from the repository's root: it imports the test helpers as `tests.*`)

Runs `selfinstruct run` (a subprocess, as a user would) on the project's seeds against the fake
server with prefix caching simulated (tests/fakecache.py) as two kinds of server do it: OpenAI
(prompts of 1,024 tokens and more, in steps of 128) and vLLM's automatic prefix caching (blocks
of 16 tokens, no minimum). Prints, per stage, the cached share of the prompt tokens as run.json
counts them (the spend journal: what the cost is computed from). The fake server's tokens are
about 1.3 a word: a real tokenizer counts ~15% more for these prompts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.fakecache import PrefixCache
from tests.fakeserver import FakeOpenAI

SEEDS = Path(__file__).resolve().parents[1] / "seeds" / "seed_tasks.jsonl"
SERVERS = {"OpenAI (>= 1024, steps of 128)": (128, 1024), "vLLM APC (blocks of 16)": (16, 0)}


def shares(api: str, block: int, minimum: int, args: argparse.Namespace) -> dict[str, str]:
    server = FakeOpenAI(prefix_cache=PrefixCache(block=block, minimum=minimum))
    with server, tempfile.TemporaryDirectory() as tmp:
        pool = Path(tmp) / "pool"
        env = {**os.environ, "OPENAI_API_KEY": "sk-test"}
        argv = ["run", "--seeds", str(args.seeds.resolve()), "-n", str(args.n), "--pool", str(pool)]
        argv += ["--base-url", server.base_url, "--api", api, "--quiet", "--seed", "1"]
        if args.prompts:
            argv += ["--prompts", str(args.prompts.resolve())]
        done = subprocess.run([sys.executable, "-m", "selfinstruct", *argv], env=env, cwd=tmp)
        if done.returncode != 0:
            sys.exit(f"selfinstruct run exited {done.returncode}")
        stages = json.loads((pool / "run.json").read_text())["stages"]
    found = {}
    for stage in ("generate", "classify", "instances"):
        totals = stages.get(stage, {}).get("totals", {})
        prompt, cached = totals.get("prompt_tokens") or 0, totals.get("cached_tokens") or 0
        found[stage] = f"{cached / prompt:.0%} of {prompt}" if prompt else "-"
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=100, help="machine instructions")
    parser.add_argument("--seeds", type=Path, default=SEEDS)
    parser.add_argument("--prompts", type=Path, help="prompt templates to use instead")
    args = parser.parse_args()
    print(f"{'server':<32} {'API':<12} {'generate':>14} {'classify':>14} {'instances':>14}")
    for name, (block, minimum) in SERVERS.items():
        for api in ("chat", "completions"):
            found = shares(api, block, minimum, args)
            print(f"{name:<32} {api:<12} " + " ".join(f"{v:>14}" for v in found.values()))


if __name__ == "__main__":
    main()
