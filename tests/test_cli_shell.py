"""Shell conventions: every option from a SELFINSTRUCT_ variable, and shell completion."""

from __future__ import annotations

import os
import subprocess
import sys

import typer.main
from typer import _click as click
from typer.core import TyperGroup, TyperOption

from selfinstruct.cli import app
from selfinstruct.cli.base import ENV_PREFIX
from tests.pooldata import KEY, MakeServer, invoke, lines, write_seeds

OWN_VARIABLES = {"api_key": "OPENAI_API_KEY", "base_url": "OPENAI_BASE_URL"}


def commands() -> list[tuple[str, click.Command, click.Context]]:
    """Every command as a shell reaches it, with the context Click gives it there."""
    root = typer.main.get_command(app)
    assert isinstance(root, TyperGroup)
    found = []
    with click.Context(root, info_name="selfinstruct") as top:
        for name in root.list_commands(top):
            command = root.get_command(top, name)
            assert command is not None
            subs = command.commands if isinstance(command, TyperGroup) else {}
            ctx = command.make_context(name, ["--help"], parent=top, resilient_parsing=True)
            found.append((name, command, ctx))
            for sub_name, sub in subs.items():
                sub_ctx = sub.make_context(sub_name, [], parent=ctx, resilient_parsing=True)
                found.append((f"{name} {sub_name}", sub, sub_ctx))
    return found


def test_every_option_of_every_command_reads_one_variable() -> None:
    checked = 0
    for name, command, ctx in commands():
        assert ctx.auto_envvar_prefix == ENV_PREFIX, name
        for param in command.params:
            if not isinstance(param, TyperOption) or param.name is None or param.hidden:
                continue
            expected = OWN_VARIABLES.get(param.name, f"SELFINSTRUCT_{param.name.upper()}")
            actual = param.envvar or f"{ctx.auto_envvar_prefix}_{param.name.upper()}"
            assert param.allow_from_autoenv and actual == expected, (name, param.name)
            checked += 1
    assert checked > 60  # generate's ~20 options, run's, export's...


def test_variables_set_options_and_flags_win(make_server: MakeServer) -> None:
    server = make_server()
    write_seeds()
    os.environ.update({"SELFINSTRUCT_NUM_INSTRUCTIONS": "3", "SELFINSTRUCT_SEEDS": "seeds.jsonl"})
    try:
        assert invoke(server, "generate", "--no-progress").exit_code == 0
        assert len(lines("data/instructions.jsonl")) >= 3
        os.environ["SELFINSTRUCT_MAX_REQUESTS"] = "0"  # a cap from the environment stops it
        capped = invoke(server, "generate", "--no-progress", "-n", "40")
        assert capped.exit_code == 3 and "reached --max-requests 0" in capped.stderr
        assert len(lines("data/instructions.jsonl")) < 40
        # The flag beats the variable: no cap once --max-requests says otherwise.
        done = invoke(server, "generate", "--no-progress", "-n", "12", "--max-requests", "50")
        assert done.exit_code == 0 and len(lines("data/instructions.jsonl")) >= 12
    finally:
        for name in ("NUM_INSTRUCTIONS", "SEEDS", "MAX_REQUESTS"):
            os.environ.pop(f"SELFINSTRUCT_{name}", None)


def test_a_bad_value_from_a_variable_names_the_option() -> None:
    env = {**os.environ, "SELFINSTRUCT_CONCURRENCY": "lots", "OPENAI_API_KEY": KEY}
    done = subprocess.run(
        [sys.executable, "-m", "selfinstruct", "classify"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 2 and "--concurrency" in done.stderr


def complete(words: str) -> list[str]:
    """What bash completion offers for the last of `words`, asked as bash asks it."""
    env = {
        **os.environ,
        "_SELFINSTRUCT_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1)),
    }
    done = subprocess.run(
        [sys.executable, "-m", "selfinstruct"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_bash_completes_commands_subcommands_and_options() -> None:
    assert complete("selfinstruct ge") == ["generate"]
    assert complete("selfinstruct batch su") == ["submit"]
    assert set(complete("selfinstruct run --max-re")) == {"--max-retries", "--max-requests"}
    # the script --install-completion writes, asked for without detecting the parent's shell
    # (which fails where no shell started the tests)
    source = {**os.environ, "_SELFINSTRUCT_COMPLETE": "source_bash"}
    script = subprocess.run(
        [sys.executable, "-m", "selfinstruct"], env=source, capture_output=True, text=True
    )
    assert script.returncode == 0 and "_SELFINSTRUCT_COMPLETE=complete_bash" in script.stdout
