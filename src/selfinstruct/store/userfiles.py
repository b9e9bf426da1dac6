"""The user's own JSONL and JSON files (seed files, `dedup`'s input and output, exports,
`batch import`): read and written with `jsonlines`, errors naming file and line, and `-` for
standard input or output. The pool's files keep pool.py's appender, repair and atomic rewrites."""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import jsonlines

from selfinstruct.errors import InputError
from selfinstruct.store.pool import naming

STD = "-"  # standard input as an input file, standard output as an output file
STDIN = "<stdin>"  # how errors name standard input

_dumps = functools.partial(json.dumps, ensure_ascii=False)  # the bytes pool.py writes too


def _loads(line: str | bytes) -> Any:
    """Without its newline, so that a line cut short is an error at its end, not on the next."""
    text = line.decode() if isinstance(line, bytes) else line  # jsonlines hands it str
    return json.loads(text.rstrip("\r\n"))


def is_std(path: Path | str | None) -> bool:
    """Whether a file argument is `-`: standard input or output."""
    return path is not None and str(path) == STD


def shown(path: Path | str) -> str:
    """The name errors give a file: `<stdin>` for `-`."""
    return STDIN if is_std(path) else str(path)


def read_input(path: Path, what: str = "file") -> bytes:
    """All bytes of a file, or of standard input for `-`."""
    if is_std(path):
        return sys.stdin.buffer.read()
    check_file(path, what)
    return path.read_bytes()


def check_file(path: Path, what: str) -> None:
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a {what}")
    if not path.is_file():
        raise InputError(f"{path}: {what} not found")


class _Numbered:
    """The lines of a stream, remembering the number of the last one handed out."""

    def __init__(self, lines: Iterable[bytes]) -> None:
        self.lines, self.lineno = lines, 0

    def __iter__(self) -> Iterator[bytes]:
        for lineno, line in enumerate(self.lines, start=1):
            self.lineno = lineno
            yield line


def read_jsonl(lines: Iterable[bytes], name: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; a bad line is an InputError naming
    `name` and the line (a UTF-8 BOM is skipped, as jsonlines does)."""
    numbered = _Numbered(lines)
    reader = jsonlines.Reader(numbered, loads=_loads)
    while True:
        try:
            obj = reader.read(allow_none=True, skip_empty=True)
        except EOFError:
            return
        except jsonlines.InvalidLineError as e:
            raise InputError(f"{name} line {e.lineno}: {why(e)}") from None
        if not isinstance(obj, dict):
            got = "null" if obj is None else type(obj).__name__
            raise InputError(f"{name} line {numbered.lineno}: expected a JSON object, got {got}")
        yield numbered.lineno, obj


def why(error: jsonlines.InvalidLineError) -> str:
    cause = error.__cause__
    if isinstance(cause, UnicodeDecodeError):
        return f"not valid UTF-8 (byte {cause.start + 1})"
    if isinstance(cause, json.JSONDecodeError):
        return f"invalid JSON: {cause.msg} (column {cause.colno})"
    return str(error)


def jsonl_file(path: Path, what: str = "file") -> Iterator[tuple[int, dict[str, Any]]]:
    """The records of a JSONL file (or standard input for `-`), with their line numbers."""
    if is_std(path):
        yield from read_jsonl(sys.stdin.buffer, STDIN)
        return
    check_file(path, what)
    with open(path, "rb") as fp:
        yield from read_jsonl(fp, str(path))


@contextlib.contextmanager
def output(path: Path) -> Iterator[IO[bytes]]:
    """A binary stream for a whole output file: standard output for `-`; otherwise a temp
    file that replaces `path` only when complete (fsync, rename), so a failure leaves the
    old file or none, never half of one."""
    if is_std(path):
        sys.stdout.flush()
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with naming(path), open(tmp, "wb") as fp:
            yield fp
            fp.flush()
            os.fsync(fp.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """One record a line, UTF-8 unescaped; to standard output for `-`."""
    with output(path) as fp, jsonlines.Writer(fp, dumps=_dumps) as writer:
        writer.write_all(records)


def write_json_list(path: Path, records: list[dict[str, Any]]) -> None:
    """A JSON list, indented (Alpaca's alpaca_data.json); to standard output for `-`."""
    with output(path) as fp:
        fp.write((json.dumps(records, ensure_ascii=False, indent=2) + "\n").encode())


def read_records(path: Path, columns: list[str] | None = None) -> tuple[list[tuple[int, Any]], str]:
    """(position, record) of a dataset file, and what a position counts (line, item or row):
    Parquet by its suffix (only `columns`, when given), a JSON list when the text starts with
    `[` (not for a .jsonl name), JSONL otherwise; `-` is standard input (JSON or JSONL). The
    one reader of the user's dataset files (`dedup`, `mix`, `distill FILE`, `backtranslate`)."""
    if not is_std(path) and path.suffix.lower() == ".parquet":
        check_file(path, "file")
        return list(enumerate(parquet_rows(path, columns), start=1)), "row"
    data = read_input(path)
    name = shown(path)
    jsonl = path.suffix.lower() in (".jsonl", ".ndjson")
    if not jsonl and data.removeprefix(b"\xef\xbb\xbf").lstrip()[:1] == b"[":
        return list(enumerate(json_list(data, name), start=1)), "item"
    return list(read_jsonl(io.BytesIO(data), name)), "line"


def json_list(data: bytes, name: str) -> list[Any]:
    try:
        items = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        raise InputError(f"{name}: not valid UTF-8 (byte {e.start + 1})") from None
    except json.JSONDecodeError as e:
        raise InputError(
            f"{name} line {e.lineno}: invalid JSON: {e.msg} (column {e.colno})"
        ) from None
    if not isinstance(items, list):
        raise InputError(f"{name}: expected a JSON list of records")
    return items


def parquet_rows(path: Path, columns: list[str] | None) -> Iterator[dict[str, Any]]:
    """The rows of a Parquet file as dicts (pyarrow, imported here: the [parquet] extra)."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(
            f"{path}: reading Parquet needs pyarrow: pip install 'selfinstruct[parquet]'"
        ) from None
    try:
        table = pq.ParquetFile(path)
    except Exception as e:  # pyarrow's own errors for a file that is not Parquet
        raise InputError(f"{path}: not a Parquet file ({e})") from None
    names = table.schema_arrow.names
    for column in columns or []:
        if column not in names:
            raise InputError(
                f"{path}: field '{column}': no such column (columns: {', '.join(names)})"
            )
    for batch in table.iter_batches(columns=columns):
        yield from batch.to_pylist()
