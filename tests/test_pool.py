"""JSONL pool files: appends, torn-line repair, the lock, seed validation."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path

import pytest

from selfinstruct.errors import CorruptPoolError, InputError, PoolLockedError
from selfinstruct.models import MachineInstruction, SeedTask
from selfinstruct.store.pool import JsonlAppender, Pool, bulk_load, load_seeds, repair_tail

SEED = {
    "id": "seed_task_0",
    "name": "greet",
    "instruction": "Write a friendly greeting for a new colleague.",
    "instances": [{"input": "", "output": "Welcome aboard!"}],
    "is_classification": False,
}


def write(path: Path, lines: list[str] | bytes) -> Path:
    data = lines if isinstance(lines, bytes) else "".join(line + "\n" for line in lines).encode()
    path.write_bytes(data)
    return path


def test_append_writes_one_line_per_record(tmp_path: Path) -> None:
    out = JsonlAppender(tmp_path / "a.jsonl")
    out.append({"id": "x", "text": "héllo"})
    out.append(SeedTask.model_validate(SEED))
    out.close()
    lines = (tmp_path / "a.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["x", "seed_task_0"]
    assert "héllo" in lines[0]


def test_torn_last_line_is_cut_and_kept_aside(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "p.jsonl", b'{"id": 1}\n{"id": 2}\n{"id": 3, "te')
    assert repair_tail(path) == len(b'{"id": 3, "te')
    assert path.read_bytes() == b'{"id": 1}\n{"id": 2}\n'
    assert (tmp_path / "p.jsonl.torn").read_bytes() == b'{"id": 3, "te\n'
    assert "removed a torn last line" in capsys.readouterr().err
    assert repair_tail(path) == 0


def test_intact_file_is_not_touched(tmp_path: Path) -> None:
    path = write(tmp_path / "p.jsonl", ['{"id": 1}'])
    assert repair_tail(path) == 0
    assert not (tmp_path / "p.jsonl.torn").exists()


def test_second_lock_holder_is_refused(tmp_path: Path) -> None:
    pool = Pool(tmp_path / "pool")
    with pool.writing():
        holder = (tmp_path / "pool" / ".lock").read_text()
        code = (
            "from selfinstruct.store.pool import Pool; from pathlib import Path; import sys\n"
            f"with Pool(Path({str(tmp_path / 'pool')!r})).writing(): pass"
        )
        child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert child.returncode != 0 and "PoolLockedError" in child.stderr
        with pytest.raises(PoolLockedError, match="in use by another selfinstruct run"):
            Pool(tmp_path / "pool").writing().__enter__()
    assert holder.startswith("pid ")
    with Pool(tmp_path / "pool").writing():
        pass  # released


def test_seeds_both_formats(tmp_path: Path) -> None:
    alpaca = {"instruction": "Name a primary colour.", "input": "", "output": "Red"}
    path = write(tmp_path / "s.jsonl", [json.dumps(SEED), "", json.dumps(alpaca)])
    seeds = load_seeds(path)
    assert [s.instruction for s in seeds] == [SEED["instruction"], alpaca["instruction"]]
    assert seeds[1].id.startswith("seed-") and seeds[1].instances[0].output == "Red"
    assert seeds[1].is_classification is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "s.jsonl: no seed tasks (the file is empty)"),
        (b"\n\n", "s.jsonl: no seed tasks (the file is empty)"),
        (
            b'{"instruction": "x", "output": "y"}\n{"instruction": \n',
            "s.jsonl line 2: invalid JSON",
        ),
        (b'{"instruction": "ok", "output": "y"}\n\xff\xfe\n', "s.jsonl line 2: not valid UTF-8"),
        (b"[1, 2]\n", "s.jsonl line 1: expected a JSON object, got list"),
        (b'{"input": "x", "output": "y"}\n', "s.jsonl line 1: field 'instruction': Field required"),
        (
            b'{"id": "a", "instruction": "x", "instances": [{"input": "q"}]}\n',
            "s.jsonl line 1: field 'instances.0.output': Field required",
        ),
        (
            b'{"id": "a", "instruction": "x", "instances": []}\n',
            "s.jsonl line 1: field 'instances': List should have at least 1 item",
        ),
        (
            b'{"id": "a", "instruction": "  ", "instances": [{"output": "o"}]}\n',
            "s.jsonl line 1: field 'instruction': Value error, must not be empty",
        ),
        (  # half of an emoji, which no UTF-8 file (the pool's own included) can hold
            b'{"instruction": "x", "input": "sun \\ud83c", "output": "y"}\n',
            "s.jsonl line 1: field 'input': Value error, holds a lone surrogate (\\ud83c at "
            "character 4)",
        ),
        (
            b'{"id": "a", "instruction": "x", "instances": [{"output": "\\udc00"}]}\n',
            "s.jsonl line 1: field 'instances.0.output': Value error, holds a lone surrogate",
        ),
    ],
)
def test_bad_seed_files_name_file_line_field(tmp_path: Path, content: bytes, message: str) -> None:
    path = write(tmp_path / "s.jsonl", content)
    with pytest.raises(InputError) as err:
        load_seeds(path)
    assert str(err.value).startswith(str(tmp_path / message.split(":")[0]))
    assert message.split(" ", 1)[1] in str(err.value) or message in str(err.value)


def test_duplicate_seed_id(tmp_path: Path) -> None:
    path = write(tmp_path / "s.jsonl", [json.dumps(SEED), json.dumps(SEED)])
    with pytest.raises(InputError, match=r"line 2: field 'id': duplicate of line 1"):
        load_seeds(path)


GOOD = b'{"id": "i-1", "instruction": "Say hi.", "request": "k", "round": 0}\n'


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (b'{"id": "i-2", \n', "line 2: invalid JSON: Expecting property name"),
        (b'{"id": "i-2", "instruction": "\xff"}\n', "line 2: not valid UTF-8 (byte 31)"),
        (b'["i-2"]\n', "line 2: expected a JSON object, got list"),
        (b'{"id": "i-2", "request": "k", "round": 0}\n', "line 2: field 'instruction': Field"),
        (
            b'{"id": "i-2", "instruction": "x", "request": "k", "round": "one"}\n',
            "line 2: field 'round': Input should be a valid integer",
        ),
    ],
)
def test_bad_pool_lines_name_file_line_field(tmp_path: Path, bad: bytes, message: str) -> None:
    pool = Pool(tmp_path / "data")
    pool.root.mkdir()
    pool.instructions.write_bytes(GOOD + bad + GOOD)
    with pytest.raises(CorruptPoolError) as err:
        list(pool.read(pool.instructions, MachineInstruction))
    assert str(err.value).startswith(f"{pool.instructions} {message}")
    assert str(err.value).endswith("(a damaged pool file: fix or remove that line)")


def test_pool_records_read_as_json_parsed_then_validated(tmp_path: Path) -> None:
    pool = Pool(tmp_path / "data")
    pool.root.mkdir()
    other = {
        "id": "i-2",
        "instruction": "Name été.",
        "request": "k",
        "round": 3,
        "most_similar": [{"instruction": "Say hi.", "score": 0.5}],
    }
    lines = [GOOD, b"\n", json.dumps(other).encode() + b"\n"]  # a blank line, a \u escape
    pool.instructions.write_bytes(b"".join(lines))
    got = list(pool.read(pool.instructions, MachineInstruction))
    expected = [MachineInstruction.model_validate(json.loads(x)) for x in lines if x.strip()]
    assert got == expected and got[1].instruction == "Name été."


def test_bulk_load_restores_the_collector_even_when_a_read_fails(tmp_path: Path) -> None:
    pool = Pool(tmp_path / "data")
    pool.root.mkdir()
    write(
        pool.instructions,
        ['{"id": "i-1", "instruction": "Say hi.", "request": "k", "round": 0}', "{"],
    )
    assert gc.isenabled()
    with pytest.raises(CorruptPoolError, match="instructions.jsonl line 2"), bulk_load():
        list(pool.read(pool.instructions, MachineInstruction))
    assert gc.isenabled()
    gc.disable()  # a caller that had paused it keeps it paused
    try:
        with bulk_load():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
