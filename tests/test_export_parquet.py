"""`export` as Parquet (by the .parquet suffix or --parquet), read back with pyarrow and with
Hugging Face `datasets` as a user loads it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner, Result

from selfinstruct.cli import app
from tests.test_export import ROWS, make_pool, user


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def load(files: dict[str, str]) -> Any:
    """`datasets.load_dataset("parquet", ...)` with its cache in the test's directory."""
    import datasets

    return datasets.load_dataset(
        "parquet", data_files=files, cache_dir=str(Path("hf-cache").resolve())
    )


EXPECTED: dict[str, list[dict[str, Any]]] = {
    "alpaca": [{k: r[k] for k in ("instruction", "input", "output")} for r in ROWS],
    "openai": [
        {
            "messages": [
                {"role": "user", "content": user(r)},
                {"role": "assistant", "content": r["output"]},
            ]
        }
        for r in ROWS
    ],
    "sharegpt": [
        {
            "conversations": [
                {"from": "human", "value": user(r)},
                {"from": "gpt", "value": r["output"]},
            ]
        }
        for r in ROWS
    ],
}


@pytest.mark.parametrize("fmt", sorted(EXPECTED))
def test_each_format_by_suffix(fmt: str) -> None:
    make_pool()
    result = run("export", "--format", fmt, "--out", "out/data.parquet")
    assert result.exit_code == 0, result.output
    assert "written  10 -> out/data.parquet" in result.stdout
    assert pq.read_table("out/data.parquet").to_pylist() == EXPECTED[fmt]
    ds = load({"train": "out/data.parquet"})["train"]
    assert ds.num_rows == 10 and list(ds) == EXPECTED[fmt]
    assert sorted(p.name for p in Path("out").iterdir()) == ["data.parquet"]  # no temp file


def test_parquet_flag_and_splits_load_as_named_splits() -> None:
    make_pool()
    result = run(
        "export",
        "--format",
        "prompt-completion",
        "--parquet",
        "--out",
        "pc.bin",
        "--split",
        "train=0.8,validation=0.2",
    )
    assert result.exit_code == 0, result.output
    ds = load({"train": "pc.train.bin", "validation": "pc.validation.bin"})
    assert (ds["train"].num_rows, ds["validation"].num_rows) == (8, 2)
    assert ds["train"].column_names == ["prompt", "completion"]
    assert ds["validation"][1]["completion"] == " " + ROWS[9]["output"]


def test_an_empty_split_keeps_the_columns() -> None:
    make_pool(ROWS[:1])
    args = ["export", "--format", "openai", "--out", "c.parquet", "--split", "a=0.9,b=0.1"]
    assert run(*args).exit_code == 0
    empty = pq.read_table("c.b.parquet")
    assert empty.num_rows == 0
    assert empty.schema == pq.read_table("c.a.parquet").schema


def test_parquet_to_stdout() -> None:
    make_pool()
    result = CliRunner().invoke(
        app, ["export", "--format", "alpaca", "--parquet", "--out", "-"], catch_exceptions=False
    )
    assert result.exit_code == 0
    Path("got.parquet").write_bytes(result.stdout_bytes)
    assert pq.read_table("got.parquet").to_pylist() == EXPECTED["alpaca"]


def test_without_pyarrow_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    make_pool()
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if not installed
    result = run("export", "--format", "alpaca", "--out", "a.parquet")
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: Parquet output needs pyarrow: pip install 'selfinstruct[parquet]'\n"
    )
    assert not Path("a.parquet").exists()
