"""`selfinstruct --help` and `status` load neither openai nor numpy: they are the commands
people run most, and those imports cost most of a second (bench/startup.py times them)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from selfinstruct.store.pool import Pool, load_seeds, store_seeds
from tests.pooldata import write_seeds

HEAVY = ("openai", "numpy", "rapidfuzz", "aiohttp")
PROBE = """
import sys
from selfinstruct.cli import main
sys.argv = ["selfinstruct", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
print(sorted(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)
"""


@pytest.mark.parametrize("argv", [["--help"], ["status"], ["status", "--json"], ["run", "--help"]])
def test_light_commands_import_no_heavy_module(argv: list[str]) -> None:
    Path("data").mkdir()
    store_seeds(Pool(Path("data")), load_seeds(write_seeds()))  # a pool for `status` to read
    probe = PROBE.format(heavy=HEAVY)
    done = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True)
    assert done.stderr.splitlines()[-1] == "[]", done.stderr
