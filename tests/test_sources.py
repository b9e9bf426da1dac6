"""Reading texts to backtranslate: formats, the text field, and one-line errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from selfinstruct.errors import InputError
from selfinstruct.store.sources import SourceText, read_texts


def test_a_directory_of_text_and_markdown_files_in_name_order(tmp_path: Path) -> None:
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    (tmp_path / "docs" / "b.md").write_text("# B\n")
    (tmp_path / "docs" / "sub" / "a.txt").write_bytes(b"\xef\xbb\xbfA text.")
    (tmp_path / "docs" / "skip.json").write_text("{}")
    assert list(read_texts(Path("docs"))) == [
        SourceText("docs/b.md", None, "# B\n", True),
        SourceText("docs/sub/a.txt", None, "A text.", False),
    ]


def test_jsonl_with_another_field_and_a_json_list(tmp_path: Path) -> None:
    Path("docs.jsonl").write_text('{"body": "One."}\n\n{"body": "Two.", "id": 3}\n')
    assert [(t.record, t.text) for t in read_texts(Path("docs.jsonl"), "body")] == [
        (1, "One."),
        (3, "Two."),
    ]
    Path("docs.json").write_text(json.dumps([{"text": "First."}, {"text": None}]))
    assert [(t.record, t.text) for t in read_texts(Path("docs.json"))] == [(1, "First."), (2, "")]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "d.jsonl",
            '{"text": "ok"}\n{"body": "x"}\n',
            "d.jsonl line 2: field 'text': missing (fields: body; see --field)",
        ),
        (
            "d.jsonl",
            '{"text": "ok"}\n{"text": 5}\n',
            "d.jsonl line 2: field 'text': expected text, got int",
        ),
        ("d.jsonl", '{"text": "ok"}\n{"text": \n', "d.jsonl line 2: invalid JSON: Expecting value"),
        ("d.jsonl", '["a list"]\n', "d.jsonl line 1: expected a JSON object, got list"),
        ("d.json", '[{"text": "ok"}, {"txt": "x"}]', "d.json item 2: field 'text': missing"),
        ("d.json", '[{"text": "ok"},\n  oops]', "d.json line 2: invalid JSON: Expecting value"),
        (
            "d.jsonl",
            '{"text": "\\ud83c"}\n',
            "d.jsonl line 1: field 'text': holds a lone surrogate",
        ),
        ("d.csv", "text\nok\n", "d.csv: unknown format; give a directory of .txt/.md files"),
    ],
)
def test_a_bad_record_is_one_line_naming_file_line_and_field(
    name: str, content: str, message: str
) -> None:
    Path(name).write_text(content)
    with pytest.raises(InputError) as err:
        list(read_texts(Path(name)))
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_missing_path_and_empty_directory() -> None:
    with pytest.raises(InputError, match=r"^nowhere: not found$"):
        list(read_texts(Path("nowhere")))
    Path("empty").mkdir()
    with pytest.raises(InputError, match=r"^empty: no \.txt or \.md files in this directory$"):
        list(read_texts(Path("empty")))


def test_parquet_without_pyarrow_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    Path("d.parquet").write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow.parquet fails
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(InputError) as err:
        list(read_texts(Path("d.parquet")))
    assert str(err.value) == (
        "d.parquet: reading Parquet needs pyarrow: pip install 'selfinstruct[parquet]'"
    )


def test_parquet_rows_and_their_errors() -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.table({"text": ["One.", None, "Three."], "n": [1, 2, 3]}), "d.parquet")
    assert [(t.record, t.text) for t in read_texts(Path("d.parquet"))] == [
        (1, "One."),
        (2, ""),
        (3, "Three."),
    ]
    with pytest.raises(InputError, match=r"^d\.parquet: field 'body': no such column \(columns"):
        list(read_texts(Path("d.parquet"), "body"))
    with pytest.raises(InputError, match=r"^d\.parquet row 1: field 'n': expected text, got int"):
        list(read_texts(Path("d.parquet"), "n"))
    Path("bad.parquet").write_text("not parquet")
    with pytest.raises(InputError, match=r"^bad\.parquet: not a Parquet file"):
        list(read_texts(Path("bad.parquet")))
