"""docs/cli.md's CLI reference matches `--help` (regenerate with tests/cli_reference.py --write)."""

from __future__ import annotations

from tests.cli_reference import BLOCK, PAGE, render


def test_cli_reference_is_current() -> None:
    text = PAGE.read_text(encoding="utf-8")
    assert BLOCK.search(text), f"{PAGE} has lost its cli-reference markers"
    assert render(text) == text, (
        "docs/cli.md CLI reference is stale: run python tests/cli_reference.py --write"
    )
