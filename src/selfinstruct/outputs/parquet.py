"""Export records as Parquet (pyarrow, imported on first use: the `[parquet]` extra).

Each export format has a fixed Arrow schema, so every file of a split, an empty one included,
has the same columns and types, and `datasets` reads chat turns as lists of structs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfinstruct.errors import ConfigError
from selfinstruct.store.userfiles import output

if TYPE_CHECKING:
    import pyarrow as pa

INSTALL = "pip install 'selfinstruct[parquet]'"


def arrow() -> Any:
    """The pyarrow module, or a usage error that says how to install it."""
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401  (loads the submodule)
    except ImportError:
        raise ConfigError(f"Parquet output needs pyarrow: {INSTALL}") from None
    return pyarrow


def schema(fmt: str) -> pa.Schema | None:
    """The columns of an export format; None for a format without one (then inferred)."""
    pa = arrow()
    text = pa.string()

    def turns(role: str, value: str) -> Any:
        return pa.list_(pa.struct([(role, text), (value, text)]))

    columns: dict[str, list[tuple[str, Any]]] = {
        "alpaca": [("instruction", text), ("input", text), ("output", text)],
        "openai": [("messages", turns("role", "content"))],
        "sharegpt": [("conversations", turns("from", "value"))],
        "prompt-completion": [("prompt", text), ("completion", text)],
        "dpo": [("prompt", text), ("chosen", text), ("rejected", text)],
        "dpo-chat": [(name, turns("role", "content")) for name in ("prompt", "chosen", "rejected")],
    }
    return pa.schema(columns[fmt]) if fmt in columns else None


def write_parquet(path: Path, records: list[dict[str, Any]], fmt: str) -> None:
    """One Parquet file (standard output for `-`), replaced whole like every export file."""
    pa = arrow()
    table = pa.Table.from_pylist(records, schema=schema(fmt))
    with output(path) as fp:
        pa.parquet.write_table(table, fp, compression="zstd")


def parquet_bytes(records: list[dict[str, Any]], fmt: str) -> bytes:
    """The same file in memory (for an upload)."""
    pa = arrow()
    sink = pa.BufferOutputStream()
    pa.parquet.write_table(
        pa.Table.from_pylist(records, schema=schema(fmt)), sink, compression="zstd"
    )
    return bytes(sink.getvalue().to_pybytes())
