"""`selfinstruct mix`: shares and counts, seeded samples, cross-source dedup, formats, errors."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from selfinstruct.errors import ConfigError
from selfinstruct.outputs.mix import Source, apportion, parse_source
from tests.pooldata import invoke, lines

TOPICS = [f"{a} {b}" for a in ("red", "blue", "green", "amber", "violet") for b in range(200)]


def alpaca(path: str, n: int, word: str, start: int = 0) -> Path:
    """n distinct Alpaca-style records; record i talks about `word` number start + i."""
    rows = [
        {
            "instruction": f"Describe {word} number {start + i} in detail",
            "input": "" if i % 2 else f"item code {start + i}",
            "output": "done",
        }
        for i in range(n)
    ]
    Path(path).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return Path(path)


def distinct(path: str, n: int, prefix: str) -> Path:
    """Records with no words in common across `prefix`es (ROUGE-L 0 between the files)."""
    rows = [
        {"instruction": f"{prefix}{i}a {prefix}{i}b {prefix}{i}c", "output": f"{prefix} out"}
        for i in range(n)
    ]
    Path(path).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return Path(path)


def mix(*args: str) -> tuple[int, str]:
    result = invoke(None, "mix", *args)
    return result.exit_code, result.output


def test_shares_of_a_total_and_a_source_field() -> None:
    distinct("ours.jsonl", 500, "x")
    distinct("dolly.jsonl", 500, "y")
    code, out = mix("ours=ours.jsonl:0.6", "dolly.jsonl:0.4", "--total", "200", "--out", "m.jsonl")
    assert code == 0, out
    records = lines("m.jsonl")
    assert Counter(r["source"] for r in records) == {"ours": 120, "dolly": 80}
    assert "ours     120 of 120 wanted (500 in the file; 0 near-duplicates dropped)" in out
    assert all(set(r) == {"instruction", "input", "output", "source"} for r in records)


def test_counts_and_whole_files() -> None:
    distinct("a.jsonl", 30, "x")
    distinct("b.jsonl", 10, "y")
    assert mix("a.jsonl:7", "b.jsonl:10", "--out", "m.jsonl")[0] == 0
    assert Counter(r["source"] for r in lines("m.jsonl")) == {"a": 7, "b": 10}
    assert mix("a.jsonl", "b.jsonl", "--out", "all.jsonl")[0] == 0
    assert len(lines("all.jsonl")) == 40


def test_the_sample_is_seeded_and_the_output_deterministic() -> None:
    distinct("a.jsonl", 300, "x")
    distinct("b.jsonl", 300, "y")
    args = ("a.jsonl:0.5", "b.jsonl:0.5", "--total", "100")
    mix(*args, "--out", "one.jsonl")
    mix(*args, "--out", "two.jsonl")
    mix(*args, "--seed", "1", "--out", "three.jsonl")
    assert Path("one.jsonl").read_bytes() == Path("two.jsonl").read_bytes()
    assert Path("one.jsonl").read_bytes() != Path("three.jsonl").read_bytes()
    assert len({r["instruction"] for r in lines("one.jsonl")}) == 100


def test_near_duplicates_across_sources_first_source_wins() -> None:
    alpaca("ours.jsonl", 20, "river")
    # the same 20 prompts with other outputs, and 20 new ones
    rows = [json.loads(line) for line in Path("ours.jsonl").read_text().splitlines()]
    theirs = [{**r, "output": "theirs"} for r in rows] + [
        {"instruction": f"Translate the word {t} into French", "output": "ok"} for t in TOPICS[:20]
    ]
    Path("theirs.json").write_text(json.dumps(theirs))
    code, out = mix("ours.jsonl", "theirs.json", "--threshold", "0.99", "--out", "m.jsonl")
    assert code == 0, out
    records = lines("m.jsonl")
    assert Counter(r["source"] for r in records) == {"ours": 20, "theirs": 20}
    assert all(r["output"] == "done" for r in records if "river" in r["instruction"])
    assert "theirs   20 of 40 wanted (40 in the file; 20 near-duplicates dropped)" in out
    # the other order: theirs wins
    mix("theirs.json", "ours.jsonl", "--threshold", "0.99", "--out", "m2.jsonl")
    assert Counter(r["source"] for r in lines("m2.jsonl")) == {"theirs": 40}


def test_short_sources_are_reported() -> None:
    distinct("a.jsonl", 5, "x")
    distinct("b.jsonl", 50, "y")
    code, out = mix("a.jsonl:0.5", "b.jsonl:0.5", "--total", "20", "--out", "m.jsonl")
    assert code == 0
    assert "5 of 10 wanted (5 in the file; 0 near-duplicates dropped, 5 short of its count)" in out
    assert len(lines("m.jsonl")) == 15


def test_chat_formats_and_dolly_names(tmp_path: Path) -> None:
    chat = [
        {"messages": [{"role": "system", "content": "Be brief."}, *turns]}
        for turns in (
            [
                {"role": "user", "content": "Name a blue fish"},
                {"role": "assistant", "content": "Tang"},
            ],
            [
                {"role": "user", "content": "Name a red bird"},
                {"role": "assistant", "content": "Cardinal"},
                {"role": "user", "content": "Another?"},
                {"role": "assistant", "content": "Robin"},
            ],
        )
    ]
    sharegpt = [
        {"conversations": [{"from": "human", "value": "Say hi"}, {"from": "gpt", "value": "Hi"}]}
    ]
    dolly = [{"instruction": "Who wrote Emma?", "context": "A novel.", "response": "Austen"}]
    Path("chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in chat))
    Path("share.json").write_text(json.dumps(sharegpt))
    Path("dolly.jsonl").write_text(json.dumps(dolly[0]) + "\n")
    code, out = mix("chat.jsonl", "share.json", "dolly.jsonl", "--out", "m.json")
    assert code == 0, out
    records = {r["instruction"]: r for r in json.loads(Path("m.json").read_text())}
    assert records["Name a red bird"]["output"] == "Cardinal"
    assert records["Say hi"] == {
        "instruction": "Say hi",
        "input": "",
        "output": "Hi",
        "source": "share",
    }
    assert records["Who wrote Emma?"]["input"] == "A novel."
    assert "1 multi-turn cut to their first exchange" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"instruction": "a", "output": "b"}\n{"instruction": "c"\n', "bad.jsonl line 2"),
        ('{"instruction": "a"}\n', "bad.jsonl line 1: field 'output': missing"),
        (
            '{"instruction": 3, "output": "b"}\n',
            "bad.jsonl line 1: field 'instruction': not a string",
        ),
        ('["a"]\n', "bad.jsonl line 1"),
        (
            '{"messages": [{"role": "assistant", "content": "hi"}]}\n',
            "bad.jsonl line 1: field 'messages': no user turn followed by an assistant turn",
        ),
    ],
)
def test_bad_lines_name_file_line_and_field(content: str, message: str) -> None:
    Path("bad.jsonl").write_text(content)
    distinct("good.jsonl", 3, "x")
    code, out = mix("good.jsonl", "bad.jsonl", "--out", "m.jsonl")
    assert code != 0 and message in out
    assert not Path("m.jsonl").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("a.jsonl:0.5", "b.jsonl:0.5"), "shares (FILE:0.6) need --total N"),
        (("a.jsonl:0.5", "b.jsonl:10", "--total", "9"), "give every source a share, or none"),
        (("a.jsonl:0.5", "b.jsonl:0.4", "--total", "9"), "the shares add up to 0.9"),
        (("a.jsonl:3", "b.jsonl:3", "--total", "9"), "--total goes with shares"),
        (("a.jsonl", "a=b.jsonl"), "two sources have the same name"),
        (("a.jsonl", "missing.jsonl"), "missing.jsonl: file not found"),
        (("a.jsonl", "b.csv"), "b.csv: unknown format '.csv'; use one of .json, .jsonl"),
        (("a.jsonl:1.5",), "a share must be above 0 and at most 1"),
    ],
)
def test_usage_errors(args: tuple[str, ...], message: str) -> None:
    distinct("a.jsonl", 3, "x")
    distinct("b.jsonl", 3, "y")
    Path("b.csv").write_text("instruction,output\n")
    code, out = mix(*args, "--out", "m.jsonl")
    assert code == 2 and message in out, out


def test_parse_source_and_apportion() -> None:
    assert parse_source("ours=data/dataset.jsonl:0.6") == Source(
        "ours", Path("data/dataset.jsonl"), share=0.6
    )
    assert parse_source("dolly.jsonl:1200") == Source("dolly", Path("dolly.jsonl"), count=1200)
    assert parse_source("dir=x/a.jsonl") == Source("dir", Path("x/a.jsonl"))
    assert parse_source("runs/a=b.jsonl") == Source("a=b", Path("runs/a=b.jsonl"))
    assert parse_source("c:/x.jsonl").path == Path("c:/x.jsonl")
    assert apportion([0.6, 0.4], 20001) == [12001, 8000]
    assert apportion([1 / 3] * 3, 10) == [4, 3, 3]
    with pytest.raises(ConfigError):
        parse_source("a.jsonl:0.0")


def test_a_parquet_source_and_dedup_of_a_parquet_file() -> None:
    """Parquet reads as JSONL does (store.userfiles.read_records), in mix and in dedup."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    distinct("a.jsonl", 5, "x")
    rows = [json.loads(line) for line in distinct("b.jsonl", 5, "y").read_text().splitlines()]
    rows.append(dict(rows[0]))  # a duplicate, for dedup
    pq.write_table(pa.Table.from_pylist(rows), "b.parquet")
    code, out = mix("a.jsonl", "hf=b.parquet", "--out", "m.jsonl")
    assert code == 0, out
    assert Counter(r["source"] for r in lines("m.jsonl")) == {"a": 5, "hf": 5}
    result = invoke(None, "dedup", "b.parquet", "--out", "kept.jsonl")
    assert result.exit_code == 0, result.output
    assert [r["instruction"] for r in lines("kept.jsonl")] == [r["instruction"] for r in rows[:5]]
