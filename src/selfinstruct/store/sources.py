"""Texts to backtranslate: a directory of .txt/.md files, a JSONL file, a JSON list or Parquet.

`read_texts` is the one place that knows the formats: each is a branch of `_reader`, and each
bad record is an InputError naming the file, the line (item, row) and the field.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfinstruct.errors import InputError
from selfinstruct.models import replace_lone_surrogates
from selfinstruct.store.userfiles import read_records

TEXT_SUFFIXES = {".txt": False, ".md": True, ".markdown": True}  # suffix -> markdown?


@dataclass(frozen=True)
class SourceText:
    """One text: its file (as given), its record in that file (None for a text file)."""

    file: str
    record: int | None
    text: str
    markdown: bool


def read_texts(path: Path, field: str = "text") -> Iterator[SourceText]:
    """Every text under `path`, in a stable order (files sorted by name, records in order)."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in TEXT_SUFFIXES)
        if not files:
            raise InputError(f"{path}: no .txt or .md files in this directory")
        for file in files:
            yield _text_file(file)
        return
    if not path.is_file():
        raise InputError(f"{path}: not found")
    yield from _reader(path)(path, field)


Reader = Callable[[Path, str], Iterator[SourceText]]


def _reader(path: Path) -> Reader:
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        return lambda p, field: iter([_text_file(p)])
    if suffix in (".parquet", ".jsonl", ".ndjson", ".json"):
        return _records
    raise InputError(
        f"{path}: unknown format; give a directory of .txt/.md files, or a .jsonl, .json or "
        ".parquet file"
    )


def _name(path: Path) -> str:
    return os.path.normpath(path)


def _text_file(path: Path) -> SourceText:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not valid UTF-8 (byte {e.start + 1})") from None
    return SourceText(_name(path), None, text, TEXT_SUFFIXES[path.suffix.lower()])


def _field(obj: Any, field: str, where: str) -> str:
    """The text field of one record, or an error naming where and which field."""
    if not isinstance(obj, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if field not in obj:
        keys = ", ".join(sorted(obj)) or "none"
        raise InputError(f"{where}: field '{field}': missing (fields: {keys}; see --field)")
    value = obj[field]
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InputError(f"{where}: field '{field}': expected text, got {type(value).__name__}")
    if replace_lone_surrogates(value) != value:
        raise InputError(
            f"{where}: field '{field}': holds a lone surrogate (half of a character that UTF-8 "
            "cannot store); fix that escape"
        )
    return value


def _records(path: Path, field: str) -> Iterator[SourceText]:
    """A JSONL file, a JSON list or Parquet (store.userfiles.read_records reads them all)."""
    columns = [field] if path.suffix.lower() == ".parquet" else None
    items, where = read_records(path, columns)
    for pos, obj in items:
        yield SourceText(_name(path), pos, _field(obj, field, f"{path} {where} {pos}"), True)
