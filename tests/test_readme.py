"""The README's CLI reference matches `--help` (regenerate with tests/readme_cli.py --write)."""

from __future__ import annotations

from readme_cli import README, render


def test_cli_reference_is_current() -> None:
    text = README.read_text(encoding="utf-8")
    assert render(text) == text, (
        "README CLI reference is stale: run python tests/readme_cli.py --write"
    )
