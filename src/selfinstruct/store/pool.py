"""All JSONL I/O: append-only, fsync'd pool files, torn-line repair, the pool lock, seed loading."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import gc
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from selfinstruct.clock import now
from selfinstruct.errors import (
    DISK_FIXES,
    ConfigError,
    CorruptPoolError,
    InputError,
    PoolLockedError,
    StorageError,
)
from selfinstruct.models import (
    AlpacaSeed,
    BatchEvent,
    Classification,
    InstanceSet,
    MachineInstruction,
    SeedTask,
)

log = logging.getLogger(__name__)  # notices; the CLI shows them on stderr

M = TypeVar("M", bound=BaseModel)


BOM = b"\xef\xbb\xbf"


def raw_lines(path: Path, skip_torn: bool = False) -> Iterator[tuple[int, bytes]]:
    """Yield (line number, bytes) for each non-blank line; a UTF-8 BOM (many editors write one)
    is skipped. `skip_torn` leaves out a last line without its newline (a pool file's torn
    tail, which the next run that takes the lock repairs)."""
    with open(path, "rb") as fp:
        for lineno, raw in enumerate(fp, start=1):
            if lineno == 1 and raw.startswith(BOM):
                raw = raw[len(BOM) :]
            if skip_torn and not raw.endswith(b"\n"):
                return
            if raw.strip():
                yield lineno, raw


def torn_tail(path: Path) -> int:
    """Bytes after the last newline of a file: a line torn by an interrupted write, or 0."""
    with open(path, "rb") as fp:
        size = fp.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        fp.seek(max(0, size - 65536))
        tail = fp.read()
    return 0 if tail.endswith(b"\n") else len(tail) - tail.rfind(b"\n") - 1


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line; bad lines raise InputError."""
    for lineno, raw in raw_lines(path):
        yield lineno, parse_line(raw, path, lineno)


def parse_line(raw: bytes, path: Path, lineno: int) -> dict[str, Any]:
    try:
        obj = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise InputError(f"{path} line {lineno}: not valid UTF-8 (byte {e.start + 1})") from None
    except json.JSONDecodeError as e:
        raise InputError(
            f"{path} line {lineno}: invalid JSON: {e.msg} (column {e.colno})"
        ) from None
    if not isinstance(obj, dict):
        raise InputError(f"{path} line {lineno}: expected a JSON object, got {type(obj).__name__}")
    return obj


@contextlib.contextmanager
def bulk_load() -> Iterator[None]:
    """Build the long-lived objects of a run (the pool read into memory, its index) with the
    cyclic collector paused, then freeze them out of its sight.

    A 50K pool is millions of objects; while they pile up, each full collection rescans all of
    them (about a third of the CPU of a 50K run's start-up). They hold no reference cycles, so
    nothing is left uncollected; later collections scan only what the run allocates after.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def read_models(path: Path, model: type[M], skip_torn: bool = False) -> Iterator[M]:
    """Read a pool file as validated records; a bad record names file, line and field.

    Each line is validated straight from its JSON (pydantic's parser: a 50K pool's three
    files in 0.40 s instead of 0.65); a line that fails goes through json.loads and
    model_validate, which accept the same records and word the error.
    """
    for lineno, raw in raw_lines(path, skip_torn):
        try:
            record = model.model_validate_json(raw)
        except ValidationError:
            record = validate(model, parse_line(raw, path, lineno), path, lineno)
        yield record


def validate(model: type[M], obj: dict[str, Any], path: Path, lineno: int) -> M:
    try:
        return model.model_validate(obj)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(record)"
        raise InputError(f"{path} line {lineno}: field '{field}': {err['msg']}") from None


def repair_tail(path: Path) -> int:
    """Cut a torn last line (a write interrupted by a crash); returns the bytes removed.

    The fragment is kept in `<file>.torn` so nothing on disk is ever silently lost.
    """
    if not path.exists() or path.stat().st_size == 0:
        return 0
    with open(path, "r+b") as fp:
        size = fp.seek(0, os.SEEK_END)
        fp.seek(max(0, size - 1))
        if fp.read(1) == b"\n":
            return 0
        fp.seek(0)
        data = fp.read()
        keep = data.rfind(b"\n") + 1
        fragment = data[keep:]
        with open(path.with_name(path.name + ".torn"), "ab") as torn:
            torn.write(fragment + b"\n")
            torn.flush()
            os.fsync(torn.fileno())
        fp.truncate(keep)
        fp.flush()
        os.fsync(fp.fileno())
    log.warning(
        "Repaired %s: removed a torn last line (%d bytes, kept in %s.torn) left by an "
        "interrupted run.",
        path,
        len(fragment),
        path.name,
    )
    return len(fragment)


def sync_interval() -> float:
    """Seconds between fsyncs of appended lines (0: every line): SELFINSTRUCT_SYNC_INTERVAL."""
    try:
        return max(0.0, float(os.environ.get("SELFINSTRUCT_SYNC_INTERVAL", "0.2")))
    except ValueError:
        raise ConfigError("SELFINSTRUCT_SYNC_INTERVAL must be a number of seconds") from None


class JsonlAppender:
    """Appends one record per line with a single write(2), so a killed process never loses a
    line it wrote. fsync runs on a background thread every `sync_interval()` seconds (group
    commit): a power cut loses at most that much, and never tears an earlier line."""

    def __init__(self, path: Path, interval: float | None = None) -> None:
        self.path = path
        self._fd: int | None = None
        self._interval = sync_interval() if interval is None else interval
        self._dirty = threading.Event()
        self._closing = threading.Event()
        self._syncer: threading.Thread | None = None

    def append(self, record: BaseModel | dict[str, Any]) -> None:
        if isinstance(record, BaseModel):  # pydantic's serializer: ~3x faster than json.dumps
            line = record.model_dump_json().encode()
        else:
            line = json.dumps(record, ensure_ascii=False).encode()
        with naming(self.path):
            if self._fd is None:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.write(self._fd, line + b"\n")
            if self._interval == 0:
                os.fsync(self._fd)
                return
        self._dirty.set()
        if self._syncer is None:
            self._syncer = threading.Thread(target=self._sync_loop, args=(self._fd,), daemon=True)
            self._syncer.start()

    def _sync_loop(self, fd: int) -> None:
        while not self._closing.wait(self._interval):
            if self._dirty.is_set():
                self._dirty.clear()
                try:
                    os.fsync(fd)
                except OSError:
                    return  # close() syncs again and reports it

    def close(self) -> None:
        if self._fd is None:
            return
        self._closing.set()
        if self._syncer is not None:
            self._syncer.join()
            self._syncer = None
        fd, self._fd = self._fd, None
        self._closing.clear()
        try:
            with naming(self.path):
                os.fsync(fd)
        finally:
            os.close(fd)

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def naming(path: Path) -> Iterator[None]:
    """Give an OSError the path being written: write(2) and fsync errors name none."""
    try:
        yield
    except OSError as e:
        if e.filename is not None:
            raise
        raise OSError(e.errno, e.strerror, str(path)) from e


def write_atomic(path: Path, text: str) -> None:
    """Replace a file in one step, so readers see the old or the new content, never half."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with naming(path), open(tmp, "w", encoding="utf-8") as fp:
            fp.write(text)
            fp.flush()
            os.fsync(fp.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # left only when the write failed (a full disk)


@contextlib.contextmanager
def atomic_jsonl(path: Path) -> Iterator[Callable[[dict[str, Any]], None]]:
    """Write a whole JSONL file that appears only when complete (temp file, fsync, rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with naming(path), open(tmp, "wb") as fp:

            def write(obj: dict[str, Any]) -> None:
                fp.write(json.dumps(obj, ensure_ascii=False).encode() + b"\n")

            yield write
            fp.flush()
            os.fsync(fp.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class PoolLock:
    """An exclusive flock on `<pool>/.lock`; the kernel frees it if the process dies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "unknown process"
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EACCES):
                raise PoolLockedError(
                    f"the pool {self.path.parent} is in use by another selfinstruct run "
                    f"({holder}); wait for it to finish or use another --pool"
                ) from None
            raise
        os.ftruncate(fd, 0)
        stamp = now()
        os.write(fd, f"pid {os.getpid()}, started {stamp}\n".encode())
        self._fd = fd

    def holder(self) -> str | None:
        """Who holds the lock ("pid 123, started ..."), or None; never waits, never takes it."""
        if not self.path.exists():
            return None
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return os.read(fd, 200).decode(errors="replace").strip() or "unknown process"
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


@dataclass
class Work:
    """The pool's machine instructions, their latest classifications and instance sets."""

    machine: list[MachineInstruction]
    classes: dict[str, Classification]
    instances: dict[str, InstanceSet]

    @property
    def unclassified(self) -> list[MachineInstruction]:
        """Instructions that stage 2 has not answered yet."""
        return [rec for rec in self.machine if rec.id not in self.classes]

    @property
    def without_instances(self) -> list[Classification]:
        """Classified instructions (Yes or No) that stage 3 has not written instances for."""
        return [
            c
            for c in self.classes.values()
            if c.is_classification is not None and c.id not in self.instances
        ]


class Pool:
    """The directory that holds a run's data; every stage reads and appends here."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.seeds = root / "seeds.jsonl"
        self.instructions = root / "instructions.jsonl"
        self.rejected = root / "rejected_instructions.jsonl"
        self.classifications = root / "classifications.jsonl"
        self.instances = root / "instances.jsonl"
        self.failures = root / "failures.jsonl"
        self.batches = root / "batches.jsonl"
        self.batch_files = root / "batch_files"
        self.cache = root / "cache.sqlite"
        self.manifest = root / "run.json"
        self.dataset = root / "dataset.jsonl"
        self.filter_rejects = root / "filter_rejects.jsonl"
        self.distilled = root / "distilled.jsonl"  # a teacher's answers (`distill`)
        self.backtranslate_rejects = root / "backtranslate_rejects.jsonl"
        self.curation = root / "curation.jsonl"  # the judge's scores (stages/curate.py)
        self.review = root / "review.jsonl"  # the judge's answers (stages/review.py)
        self.preferences = root / "preferences.jsonl"  # candidates, scores, pairs (`preferences`)
        self.lock = PoolLock(root / ".lock")

    def work(self) -> Work:
        """Stages 1-3's records and what they leave to do (the one place that decides)."""
        return Work(
            list(self.read(self.instructions, MachineInstruction)),
            {c.id: c for c in self.read(self.classifications, Classification)},
            {r.id: r for r in self.read(self.instances, InstanceSet)},
        )

    def jsonl_files(self) -> list[Path]:
        return sorted(self.root.glob("*.jsonl"))

    def exists(self) -> bool:
        """Whether a pool was started here: it holds seed tasks, instructions, or the request
        cache or manifest of a run killed before it stored anything else."""
        files = (self.seeds, self.instructions, self.cache, self.manifest)
        return any(path.is_file() for path in files)

    @contextlib.contextmanager
    def writing(self) -> Iterator[Pool]:
        """Create the pool, take its lock and repair torn lines; release on exit. A disk that
        refuses a write (no permission, full, read-only) becomes a StorageError naming the path."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(
                f"cannot create the pool directory {self.root}: {e.strerror}"
            ) from None
        with self.disk_errors():
            self.lock.acquire()
            try:
                for path in self.jsonl_files():
                    repair_tail(path)
                self.check_writable()
                yield self
            finally:
                self.lock.release()

    def check_writable(self) -> None:
        """Open each file a run appends to for writing (and write nothing), so that a read-only
        pool fails before any request is paid for."""
        for path in [*self.jsonl_files(), self.cache]:
            if path.is_file():
                os.close(os.open(path, os.O_WRONLY | os.O_APPEND))

    @contextlib.contextmanager
    def disk_errors(self) -> Iterator[None]:
        try:
            yield
        except OSError as e:
            if e.errno not in DISK_FIXES:
                raise
            raise StorageError.from_os(e, self.root) from e
        except sqlite3.OperationalError as e:
            code = SQLITE_FAULTS.get(str(e))
            if code is None:
                raise
            error = OSError(code, os.strerror(code), str(self.cache))
            raise StorageError.from_os(error, self.root) from e

    def read(self, path: Path, model: type[M]) -> Iterator[M]:
        """Records of one pool file (none if it does not exist yet). A torn last line is left
        out: the next run that takes the lock cuts it off (`repair_tail`)."""
        if not path.exists():
            return
        try:
            yield from read_models(path, model, skip_torn=True)
        except InputError as e:
            raise CorruptPoolError(f"{e} (a damaged pool file: fix or remove that line)") from None


# SQLite's words for the disk faults of its own files (it raises no OSError).
SQLITE_FAULTS = {
    "database or disk is full": errno.ENOSPC,
    "attempt to write a readonly database": errno.EACCES,
    "unable to open database file": errno.EACCES,
}


def load_seeds(path: Path) -> list[SeedTask]:
    """Read a seed file in the reference schema or Alpaca style; errors name file, line, field."""
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a seed file; pass a JSONL file to --seeds")
    if not path.is_file():
        raise InputError(f"{path}: seed file not found")
    from selfinstruct.store.userfiles import jsonl_file  # it builds on this module

    seeds: list[SeedTask] = []
    ids: dict[str, int] = {}
    for lineno, obj in jsonl_file(path, "seed file"):
        model: type[SeedTask] | type[AlpacaSeed] = SeedTask if "instances" in obj else AlpacaSeed
        parsed = validate(model, obj, path, lineno)
        seed = parsed.to_seed() if isinstance(parsed, AlpacaSeed) else parsed
        if seed.id in ids:
            raise InputError(
                f"{path} line {lineno}: field 'id': duplicate of line {ids[seed.id]} ({seed.id!r})"
            )
        ids[seed.id] = lineno
        seeds.append(seed)
    if not seeds:
        raise InputError(f"{path}: no seed tasks (the file is empty)")
    return seeds


def pool_seeds(pool: Pool, seeds_path: Path | None) -> list[SeedTask]:
    """The pool's seed tasks: stored on first use, so later runs and stages need no --seeds."""
    stored = list(pool.read(pool.seeds, SeedTask)) if pool.seeds.exists() else None
    if seeds_path is None:
        if stored is None:
            raise ConfigError(f"the pool {pool.root} has no seed tasks yet; pass --seeds FILE")
        return stored
    seeds = load_seeds(seeds_path)
    if stored is not None and [s.instruction for s in stored] != [s.instruction for s in seeds]:
        raise ConfigError(
            f"the pool {pool.root} was started from other seed tasks than {seeds_path}; "
            "pass the same --seeds (or none) to continue it, or use a new --pool"
        )
    return seeds


def store_seeds(pool: Pool, seeds: list[SeedTask]) -> None:
    if not pool.seeds.exists():
        lines = (json.dumps(s.model_dump(mode="json"), ensure_ascii=False) for s in seeds)
        write_atomic(pool.seeds, "".join(line + "\n" for line in lines))


OPEN = ("written", "uploading", "uploaded", "creating", "submitted")  # a batch's open states


def open_batches(pool: Pool) -> list[BatchEvent]:
    """Batches not collected yet: batches.jsonl folded to the last event of each file."""
    latest = {e.file: e for e in pool.read(pool.batches, BatchEvent)}
    return [e for e in latest.values() if e.state in OPEN]
