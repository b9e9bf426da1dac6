"""Generate docs/cli.md's CLI reference from `--help`: `python tests/cli_reference.py --write`.

The help is rendered 100 columns wide, without colour, whatever the terminal, so the page is
the same on every machine.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from typer.testing import CliRunner

from selfinstruct.cli import app

PAGE = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
BLOCK = re.compile(r"(<!-- cli-reference:[^\n]*-->\n)(.*?)(<!-- end cli-reference -->)", re.DOTALL)
ENV = {"COLUMNS": "100", "TERMINAL_WIDTH": "100", "NO_COLOR": "1", "TERM": "dumb"}


def help_text(args: list[str]) -> str:
    result = CliRunner(env=ENV).invoke(app, [*args, "--help"], prog_name="selfinstruct")
    assert result.exit_code == 0, result.output
    return "\n".join(line.rstrip() for line in result.output.strip().splitlines())


def reference() -> str:
    commands = sorted(c.name or "" for c in app.registered_commands)
    parts = [f"```\n$ selfinstruct --help\n{help_text([])}\n```\n"]
    for name in commands:
        parts.append(f"```\n$ selfinstruct {name} --help\n{help_text([name])}\n```\n")
    for group in sorted(app.registered_groups, key=lambda g: g.name or ""):
        assert group.name and group.typer_instance
        subcommands = sorted(c.name or "" for c in group.typer_instance.registered_commands)
        for args in [[group.name]] + [[group.name, name] for name in subcommands]:
            parts.append(f"```\n$ selfinstruct {' '.join(args)} --help\n{help_text(args)}\n```\n")
    return "\n".join(parts)


def render(page: str) -> str:
    return BLOCK.sub(lambda m: m.group(1) + reference() + m.group(3), page)


if __name__ == "__main__":
    text = PAGE.read_text(encoding="utf-8")
    if "--write" in sys.argv:
        PAGE.write_text(render(text), encoding="utf-8")
    else:
        print(reference())
