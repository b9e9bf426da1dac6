"""`-` as a file: `export --out -` and `dedup --out -` write standard output (the summary goes
to stderr), `dedup -` reads standard input; and the user's JSONL files read through jsonlines
keep their one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from selfinstruct.cli import app
from selfinstruct.store.userfiles import jsonl_file
from tests.test_export import ROWS, make_pool

A = "List five fruits that are high in vitamin C."
A2 = "List five fruits that are very high in vitamin C."
B = "Explain how tides are caused by the moon."


def run(*args: str, stdin: bytes | None = None) -> Result:
    return CliRunner().invoke(app, list(args), input=stdin, catch_exceptions=False)


def records(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def test_export_to_stdout() -> None:
    make_pool()
    result = run("export", "--format", "sharegpt", "--out", "-")
    assert result.exit_code == 0, result.output
    got = records(result.stdout)
    assert [c["conversations"][1]["value"] for c in got] == [r["output"] for r in ROWS]
    assert result.stderr.startswith("export: done\n") and "written  10 -> -" in result.stderr
    assert not Path("-").exists()


def test_alpaca_export_to_stdout_is_a_json_list() -> None:
    make_pool()
    result = run("export", "--format", "alpaca", "--out", "-")
    assert [r["output"] for r in json.loads(result.stdout)] == [r["output"] for r in ROWS]


def test_split_needs_file_names() -> None:
    make_pool()
    result = run("export", "--format", "openai", "--out", "-", "--split", "a=0.5,b=0.5")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == (
        "Error: --split writes one file per split; give --out a file name, not -\n"
    )


def test_dedup_stdin_to_stdout() -> None:
    lines = [{"instruction": A}, {"instruction": A2}, {"instruction": B}]
    data = "".join(json.dumps(r) + "\n" for r in lines).encode()
    result = run("dedup", "-", "--out", "-", "--rejected", "rej.jsonl", stdin=data)
    assert result.exit_code == 0, result.output
    assert records(result.stdout) == [lines[0], lines[2]]
    assert "kept     2 -> -" in result.stderr
    assert records(Path("rej.jsonl").read_text())[0]["instruction"] == A2


def test_dedup_stdin_json_list_and_errors_name_stdin() -> None:
    data = json.dumps([{"prompt": A}, {"prompt": A2}]).encode()
    result = run("dedup", "-", "--out", "kept.json", stdin=data)
    assert json.loads(Path("kept.json").read_text()) == [{"prompt": A}]
    result = run("dedup", "-", "--out", "-", stdin=b'{"instruction": "a b c"}\n{"instruction"\n')
    assert result.exit_code == 2 and result.stdout == ""
    assert (
        result.stderr
        == "Error: <stdin> line 2: invalid JSON: Expecting ':' delimiter (column 15)\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-", "--out", "k.jsonl", "--against", "-"], "only one input can be standard input (-)"),
        (
            ["in.jsonl", "--out", "-", "--rejected", "-"],
            "--out and --rejected cannot both be standard output (-)",
        ),
    ],
)
def test_one_stream_each_way(args: list[str], message: str) -> None:
    Path("in.jsonl").write_text(json.dumps({"instruction": A}) + "\n")
    result = run("dedup", *args, stdin=b"")
    assert result.exit_code == 2 and result.stderr == f"Error: {message}\n"


def test_a_shell_pipe_from_export_through_dedup() -> None:
    """As a user types it: real pipes between two processes, no file in between."""
    rows = [
        {"id": f"i-{k}", "instruction": t, "input": "", "output": "o", "is_classification": False}
        for k, t in enumerate([A, A2, B])
    ]
    make_pool(rows)
    if not Path(sys.executable).with_name("selfinstruct").exists():
        pytest.skip("no selfinstruct script beside the interpreter")
    cli = str(Path(sys.executable).with_name("selfinstruct"))
    done = subprocess.run(
        f"{cli} export --format openai --out - | {cli} dedup - --out - 2>err.txt",
        shell=True,
        capture_output=True,
        text=True,
        env={**os.environ, "TQDM_DISABLE": "1"},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    got = records(done.stdout)
    assert [r["messages"][0]["content"] for r in got] == [A, B]
    assert "dedup: done" in Path("err.txt").read_text()
    assert "export: done" in done.stderr


def test_user_files_keep_their_line_errors(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    cases = {
        b'{"a": 1}\n\n[1, 2]\n': "line 3: expected a JSON object, got list",
        b'{"a": 1}\nnull\n': "line 2: expected a JSON object, got null",
        b'{"a": "\xff"}\n': "line 1: not valid UTF-8 (byte 8)",
        b'{"a": 1}\n{"a": 1,}\n': "line 2: invalid JSON: Expecting property name enclosed in "
        "double quotes (column 9)",
    }
    for data, message in cases.items():
        path.write_bytes(data)
        with pytest.raises(Exception) as caught:
            list(jsonl_file(path))
        assert str(caught.value) == f"{path} {message}"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\n\n  \n{"b": 2}')  # a BOM, blank lines, no last newline
    assert list(jsonl_file(path)) == [(1, {"a": 1}), (4, {"b": 2})]
