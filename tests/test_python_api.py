"""docs/python.md's examples run as written, against the fake server, and the package's
public names are the ones the page lists."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

import selfinstruct
from tests.fakeserver import FakeOpenAI
from tests.pooldata import KEY

DOC = Path(__file__).resolve().parents[1] / "docs" / "python.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_the_whole_run_example(
    fake_server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_server.base_url)
    Path("seeds").mkdir()
    shutil.copy(Path(__file__).parents[1] / "seeds" / "seed_tasks.jsonl", "seeds")
    exec(compile(BLOCKS[0], str(DOC), "exec"), {})
    first = capsys.readouterr().out
    kept = int(first.split()[0])
    assert kept > 0 and f"instances in {Path('data') / 'dataset.jsonl'}" in first
    assert len(Path("data/dataset.jsonl").read_text().splitlines()) == kept
    assert "'pending': 0" in first
    sent = len(fake_server.requests)
    exec(compile(BLOCKS[0], str(DOC), "exec"), {})  # again: at its target, nothing is sent
    assert len(fake_server.requests) == sent
    assert capsys.readouterr().out.startswith("{'done': 20, 'pending': 0,")


def test_the_dedup_example(capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(BLOCKS[1], str(DOC), "exec"), {})
    assert capsys.readouterr().out == (
        "['Write a poem about the sea.', 'Name three rivers.'] 0.0\n"
    )


def test_every_public_name_loads_and_is_documented() -> None:
    text = DOC.read_text()
    for name in selfinstruct.__all__:
        assert getattr(selfinstruct, name) is not None
        assert name == "__version__" or f"`{name}`" in text, name
