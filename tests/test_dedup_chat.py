"""`selfinstruct dedup` on chat data: OpenAI `messages` and ShareGPT `conversations`, found by
default or addressed with `--field LIST.ROLE`; its errors name file, line and field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from selfinstruct.cli import app

A = "List five fruits that are high in vitamin C."
A2 = "List five fruits that are very high in vitamin C."
B = "Explain how tides are caused by the moon."


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def write(path: str, records: list[dict[str, Any]]) -> None:
    Path(path).write_text("".join(json.dumps(r) + "\n" for r in records))


def read(path: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def openai(user: str, system: str = "Be brief.") -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
            {"role": "assistant", "content": "ok"},
        ]
    }


def sharegpt(human: str) -> dict[str, Any]:
    return {"conversations": [{"from": "human", "value": human}, {"from": "gpt", "value": "ok"}]}


@pytest.mark.parametrize(
    ("make", "field"), [(openai, "messages.user"), (sharegpt, "conversations.user")]
)
def test_chat_formats_are_detected(make: Any, field: str) -> None:
    records = [make(A), make(A2), make(B)]
    write("chat.jsonl", records)
    result = run("dedup", "chat.jsonl", "--out", "kept.jsonl", "--rejected", "rej.jsonl")
    assert result.exit_code == 0, result.output
    assert f"records  3 (compared: {field})" in result.stdout
    assert read("kept.jsonl") == [records[0], records[2]]  # unchanged, system turn included
    rejected = read("rej.jsonl")
    assert len(rejected) == 1 and rejected[0]["_most_similar"] == A


def test_the_system_turn_is_not_compared() -> None:
    """Every record has the same system message; only the first user turn counts."""
    write("chat.jsonl", [openai(A, system=B), openai(B, system=A)])
    assert run("dedup", "chat.jsonl", "--out", "kept.jsonl").exit_code == 0
    assert len(read("kept.jsonl")) == 2


def test_field_addresses_a_role_and_the_sharegpt_names() -> None:
    convo = {
        "conversations": [
            {"from": "human", "value": "Hello there, how are you?"},
            {"from": "gpt", "value": A},
            {"from": "human", "value": "Thanks."},
        ]
    }
    other = {"conversations": [{"from": "human", "value": B}, {"from": "gpt", "value": A2}]}
    write("sg.jsonl", [convo, other])
    for field in ("conversations.gpt", "conversations.assistant"):
        result = run("dedup", "sg.jsonl", "--out", "kept.jsonl", "--field", field)
        assert result.exit_code == 0, result.output
        assert read("kept.jsonl") == [convo]  # the answers are near-duplicates
    result = run("dedup", "sg.jsonl", "--out", "kept.jsonl", "--field", "conversations.human")
    assert result.exit_code == 0, result.output
    assert read("kept.jsonl") == [convo, other]


def test_openai_content_parts_are_read_as_text() -> None:
    parts = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": A}, {"type": "image_url"}]},
            {"role": "assistant", "content": "ok"},
        ]
    }
    write("chat.jsonl", [parts, openai(A2)])
    assert run("dedup", "chat.jsonl", "--out", "kept.jsonl").exit_code == 0
    assert read("kept.jsonl") == [parts]


def test_a_chat_file_against_an_alpaca_set() -> None:
    """Each file's format is detected on its own."""
    write("chat.jsonl", [sharegpt(A2), sharegpt(B)])
    write("old.jsonl", [{"instruction": A, "output": "x"}])
    assert (
        run("dedup", "chat.jsonl", "--out", "kept.jsonl", "--against", "old.jsonl").exit_code == 0
    )
    assert read("kept.jsonl") == [sharegpt(B)]


@pytest.mark.parametrize(
    ("records", "args", "message"),
    [
        (
            [openai(A), {"messages": [{"role": "assistant", "content": "hi"}]}],
            [],
            "chat.jsonl line 2: field 'messages.user': no 'user' turn with text in 'messages'",
        ),
        (
            [openai(A), {"prompt": A}],
            [],
            "chat.jsonl line 2: field 'messages.user': missing (no list 'messages')",
        ),
        (
            [{"messages": "hello"}],
            [],
            "chat.jsonl line 1: field 'messages.user': 'messages' is not a list",
        ),
        (
            [{"text": A}],
            [],
            "chat.jsonl line 1: no text to compare: none of the fields instruction, "
            "messages.user, conversations.user, prompt; name one with --field",
        ),
        (
            [sharegpt(A)],
            ["--field", "conversations.system"],
            "chat.jsonl line 1: field 'conversations.system': no 'system' turn with text in "
            "'conversations'",
        ),
    ],
)
def test_bad_chat_records(records: list[dict[str, Any]], args: list[str], message: str) -> None:
    write("chat.jsonl", records)
    result = run("dedup", "chat.jsonl", "--out", "kept.jsonl", *args)
    assert result.exit_code == 2
    assert result.stderr == f"Error: {message}\n"
    assert not Path("kept.jsonl").exists()


def test_a_json_list_of_chats_names_the_item() -> None:
    Path("chat.json").write_text(json.dumps([sharegpt(A), {"conversations": []}]))
    result = run("dedup", "chat.json", "--out", "kept.json")
    assert result.stderr == (
        "Error: chat.json item 2: field 'conversations.user': no 'user' turn with text in "
        "'conversations'\n"
    )
