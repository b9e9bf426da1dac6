"""`selfinstruct evolve` and `run --evolve` end to end against the fake server (fakeevolve.py)."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
from typer.testing import Result

from selfinstruct.method.evolve import changed, clean_reply, parse_ops
from selfinstruct.method.prompts import EVOLVE_OPS
from selfinstruct.models import MachineInstruction, stable_id
from selfinstruct.stages.evolve import chosen
from tests import fakeevolve
from tests.fakeserver import FakeOpenAI, fixed_reply, prompt_text
from tests.pooldata import FAST, SEEDS, MakeServer, invoke, lines, write_config, write_seeds

PARENTS = [
    "Suggest three names for a small bakery that sells only rye bread [rewrite]",
    "Explain how a bicycle gear system helps riders climb steep hills [rewrite]",
    "Write a short apology to a customer whose parcel arrived two weeks late [rewrite]",
    "Compare renting and buying a flat for a young couple in a large city [rewrite]",
]


@pytest.fixture(autouse=True)
def fast_retries() -> None:
    write_config(FAST + "max_retries = 0\nmax_consecutive_failures = 50\n")


def cli(server: FakeOpenAI, *args: str) -> Result:
    return invoke(server, *args, "--no-progress")


def make_pool(texts: list[str], root: Path = Path("data")) -> list[MachineInstruction]:
    """A pool of seeds and these stage 1 instructions, written as stage 1 writes them."""
    root.mkdir(exist_ok=True)
    seeds = [
        {"id": f"s{i}", "instruction": t, "instances": [{"input": "", "output": "ok"}]}
        for i, t in enumerate(SEEDS)
    ]
    (root / "seeds.jsonl").write_text("".join(json.dumps(s) + "\n" for s in seeds))
    records = [
        MachineInstruction(id=stable_id("i", t), instruction=t, request=f"k{i}", round=i)
        for i, t in enumerate(texts)
    ]
    (root / "instructions.jsonl").write_text("".join(r.model_dump_json() + "\n" for r in records))
    return records


def evolved() -> list[dict[str, object]]:
    return [r for r in lines("data/instructions.jsonl") if "parent" in r]


def evolve_rejects() -> list[dict[str, object]]:
    return [r for r in lines("data/rejected_instructions.jsonl") if str(r["id"]).startswith("e-")]


def posts(server: FakeOpenAI) -> int:
    return len([r for r in server.requests if r.path.endswith("/completions")])


@pytest.mark.parametrize("op", EVOLVE_OPS)
def test_each_operation_rewrites_as_its_prompt_asks(make_server: MakeServer, op: str) -> None:
    server = make_server()
    parents = make_pool(PARENTS)
    result = cli(server, "evolve", "--ops", op)
    assert result.exit_code == 0, result.output
    assert re.search(rf"\n  accepted +{len(PARENTS)}\n", result.output)
    by_parent = {r["parent"]: r for r in evolved()}
    assert set(by_parent) == {p.id for p in parents}
    for parent in parents:
        record = by_parent[parent.id]
        assert record["operation"] == op and record["round"] == 1
        assert record["instruction"] == fakeevolve.rewrite(op, parent.instruction)
        assert record["id"] == stable_id("i", str(record["instruction"]))
    prompts = [prompt_text(r.body) for r in server.requests if r.body]
    title = next(t for t, name in fakeevolve.TITLES.items() if name == op)
    assert all(p.startswith(title) for p in prompts)
    assert sorted(fakeevolve.instruction(p) for p in prompts) == sorted(PARENTS)


def test_every_rejection_reason_lands_in_the_rejects_file(make_server: MakeServer) -> None:
    server = make_server()
    target = "Explain how tides work to a curious ten-year-old at the beach [rewrite]"
    taken = fakeevolve.rewrite("deepen", target)  # already in the pool: too similar
    long_one = " ".join(["Describe the history of the local harbour in detail"] * 14)
    texts = {
        "unchanged": "Give a friendly greeting to a new member of the chess club [copy]",
        "refusal": "Give two tips for sleeping well before an important exam [refuse]",
        "answer": "Name the largest desert in Africa and say why it is so dry [answer]",
        "blacklisted_word": "Describe a graph of rainfall over one year in Lisbon [rewrite]",
        "too_long": long_one + " [rewrite]",
        "too_similar": target,
    }
    make_pool([*texts.values(), taken])
    result = cli(server, "evolve", "--ops", "deepen")
    assert result.exit_code == 0, result.output
    by_parent = {str(r["detail"]).split(":")[0]: r for r in evolve_rejects()}
    for reason, text in texts.items():
        record = by_parent[f"deepen of {stable_id('i', text)}"]
        assert record["reason"] == reason, (reason, record)
        assert f"    {reason}" in result.output
    assert str(by_parent[f"deepen of {stable_id('i', target)}"]["detail"]).endswith(taken)
    # only the rewrite of `taken` itself is new
    assert [r["parent"] for r in evolved()] == [stable_id("i", taken)]


def test_a_reply_cut_at_max_tokens_is_rejected(make_server: MakeServer) -> None:
    server = make_server()
    make_pool(PARENTS[:1])
    server.script("length")
    assert cli(server, "evolve", "--ops", "harder").exit_code == 0
    [reject] = evolve_rejects()
    assert reject["reason"] == "cut_off" and "max_tokens (300)" in str(reject["detail"])
    assert evolved() == []


def test_an_empty_reply_is_rejected_and_a_chatty_one_cleaned(make_server: MakeServer) -> None:
    make_pool(PARENTS[:1])
    assert cli(make_server(reply=fixed_reply("  \n")), "evolve").exit_code == 0
    assert [r["reason"] for r in evolve_rejects()] == ["empty"]
    Path("data/rejected_instructions.jsonl").unlink()
    chatty = "Name a poem that every student should read and explain why [chatty]"
    make_pool([chatty])
    server = make_server()
    assert cli(server, "evolve", "--ops", "harder").exit_code == 0
    [record] = evolved()
    assert record["instruction"] == fakeevolve.rewrite("harder", chatty)
    [request] = [r.body for r in server.requests if r.body]
    assert request is not None
    assert str(fakeevolve.reply(prompt_text(request), chat=True)).startswith("Sure! Here's")


def test_rounds_evolve_the_last_rounds_output_and_reruns_ask_nothing(
    make_server: MakeServer,
) -> None:
    server = make_server()
    parents = make_pool(PARENTS)
    assert cli(server, "evolve", "--rounds", "2", "--ops", "constraints").exit_code == 0
    records = evolved()
    first = {r["id"]: r for r in records if r["round"] == 1}
    second = [r for r in records if r["round"] == 2]
    assert {r["parent"] for r in first.values()} == {p.id for p in parents}
    assert second and all(r["parent"] in first for r in second)
    for r in second:
        assert r["instruction"] == fakeevolve.rewrite(
            "constraints", str(first[r["parent"]]["instruction"])
        )
    sent = posts(server)
    again = cli(server, "evolve", "--rounds", "2", "--ops", "constraints")
    assert again.exit_code == 0 and posts(server) == sent
    assert f"0 instructions ({len(records)} done by earlier runs)" in again.output


def test_a_lost_record_is_answered_from_the_cache(make_server: MakeServer) -> None:
    server = make_server()
    make_pool(PARENTS)
    assert cli(server, "evolve").exit_code == 0
    sent = posts(server)
    path = Path("data/instructions.jsonl")
    kept = path.read_text().splitlines()
    path.write_text("\n".join(kept[:-1]) + "\n")  # the last evolved line never reached the disk
    result = cli(server, "evolve")
    assert result.exit_code == 0 and posts(server) == sent
    assert "0 sent, 1 from cache" in result.output
    assert path.read_text().splitlines() == kept


def test_sample_takes_a_seeded_stable_share(make_server: MakeServer) -> None:
    texts = [f"Plan a day trip to village number {i} for a family with two dogs" for i in range(40)]
    records = make_pool(texts)
    server = make_server()
    assert cli(server, "evolve", "--sample", "0.5", "--seed", "7").exit_code == 0
    asked = {fakeevolve.instruction(prompt_text(r.body)) for r in server.requests if r.body}
    expected = {r.instruction for r in records if chosen(7, 0.5, r.id)}
    assert asked == expected and 10 < len(expected) < 30
    assert {r.instruction for r in records if chosen(8, 0.5, r.id)} != expected


def test_failed_requests_are_not_recorded_and_asked_next_time(make_server: MakeServer) -> None:
    server = make_server()
    make_pool(PARENTS)
    server.script("500")
    result = cli(server, "evolve", "--concurrency", "1")
    assert result.exit_code == 4, result.output
    assert "1 not evolved" in result.output
    assert len(evolved()) == len(PARENTS) - 1
    assert cli(server, "evolve").exit_code == 0
    assert len(evolved()) == len(PARENTS)


def test_evolved_instructions_go_through_classify_instances_and_filter(
    make_server: MakeServer,
) -> None:
    server = make_server()
    make_pool(PARENTS)
    assert cli(server, "evolve", "--ops", "concretize").exit_code == 0
    for stage in ("classify", "instances"):
        assert cli(server, stage).exit_code == 0
    assert invoke(None, "filter").exit_code == 0
    new = {str(r["instruction"]) for r in evolved()}
    assert new <= {r["instruction"] for r in lines("data/dataset.jsonl")}
    stats = invoke(None, "stats", "--json")
    assert json.loads(stats.output)["machine"]["instructions"] == 2 * len(PARENTS)
    status = invoke(None, "status").output
    assert re.search(r"\n  evolve +\d+ tokens, \$0\.\d{4}\n", status), status


def test_completions_api(make_server: MakeServer) -> None:
    server = make_server()
    make_pool(PARENTS[:2])
    assert cli(server, "evolve", "--api", "completions", "--ops", "harder").exit_code == 0
    assert sorted(str(r["instruction"]) for r in evolved()) == sorted(
        fakeevolve.rewrite("harder", p) for p in PARENTS[:2]
    )
    assert all(
        str(r.body["prompt"]).endswith("Rewritten instruction:") for r in server.requests if r.body
    )


def test_run_evolve_adds_the_stage_and_a_rerun_asks_nothing(make_server: MakeServer) -> None:
    server = make_server()
    write_seeds()
    args = ("run", "--seeds", "seeds.jsonl", "-n", "12", "--quiet", "--evolve", "deepen,harder")
    assert invoke(server, *args).exit_code == 0
    records = evolved()
    assert records and {r["operation"] for r in records} <= {"deepen", "harder"}
    ids = {r["id"] for r in lines("data/instructions.jsonl")}
    assert {r["id"] for r in lines("data/classifications.jsonl")} == ids
    assert {r["id"] for r in lines("data/instances.jsonl")} <= ids
    dataset = {r["instruction"] for r in lines("data/dataset.jsonl")}
    assert dataset & {r["instruction"] for r in records}
    sent = posts(server)
    assert invoke(server, *args).exit_code == 0
    assert posts(server) == sent


def test_run_evolve_with_batch_is_refused(make_server: MakeServer) -> None:
    write_seeds()
    result = invoke(make_server(), "run", "--seeds", "seeds.jsonl", "--batch", "--evolve", "harder")
    assert result.exit_code == 2
    assert "--evolve does not go with run --batch" in result.output


def test_unknown_operation_is_a_usage_error(make_server: MakeServer) -> None:
    make_pool(PARENTS)
    result = cli(make_server(), "evolve", "--ops", "deepen,bogus")
    assert result.exit_code == 2
    assert "--ops: unknown operation 'bogus'; choose from constraints, deepen" in result.output
    write_config("[evolve]\nops = ['wider']\n")
    result = cli(make_server(), "evolve")
    assert result.exit_code == 2 and "unknown operation 'wider'" in result.output


def test_parse_ops_keeps_the_canonical_order() -> None:
    assert parse_ops(" Harder,deepen ") == ("deepen", "harder")


@pytest.mark.parametrize(
    ("reply", "cleaned"),
    [
        ("```\nAsk for a haiku about rain.\n```", "Ask for a haiku about rain."),
        ("Rewritten instruction: ask for a haiku about rain.", "Ask for a haiku about rain."),
        ("**New instruction:** Ask for a haiku.", "Ask for a haiku."),
        ('"Ask for a haiku about rain."', "Ask for a haiku about rain."),
        (
            "Here is the harder version:\n\nAsk for a sonnet.\n\nHope this helps!",
            "Ask for a sonnet.",
        ),
        ("Ask for a list:\n1. one\n2. two", "Ask for a list:\n1. one\n2. two"),
    ],
)
def test_clean_reply(reply: str, cleaned: str) -> None:
    assert clean_reply(reply) == cleaned


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("I'm sorry, but I can't do that.", "refusal"),
        ("As an AI, I cannot rewrite this.", "refusal"),
        ("Answer: Paris is the capital.", "answer"),
        ("Sure! Here is a poem about rain:\nRain falls.", "answer"),
        ("Paris.\n\nIt is the capital.\n\nIt is large.", "answer"),
        ("write a POEM about rain!", "unchanged"),
        ("Write a poem about rain in the style of a sea shanty.", None),
    ],
)
def test_changed(text: str, reason: str | None) -> None:
    verdict = changed("Write a poem about rain.", text)
    assert (verdict[0] if verdict else None) == reason


def test_fake_outcomes_are_spread() -> None:
    rng = random.Random(1)
    kinds = [fakeevolve.outcome(f"task {rng.random()}") for _ in range(400)]
    assert {"rewrite", *fakeevolve.OUTCOMES} == set(kinds)
    assert kinds.count("rewrite") > 250


def test_batch_path_round_by_round_then_online_finds_every_answer(
    make_server: MakeServer,
) -> None:
    server = make_server()
    parents = make_pool(PARENTS)
    first = cli(server, "evolve", "--batch", "--rounds", "2", "--ops", "deepen")
    assert first.exit_code == 0, first.output
    assert re.search(r"submitted\s+4 requests in 1 file \(evolve 4\)", first.output)
    assert not [r for r in server.requests if r.path == "/v1/chat/completions"]
    files = server.files_batches
    [requests] = [files.lines(f) for f, meta in files.files.items() if meta["purpose"] == "batch"]
    assert {fakeevolve.instruction(r["body"]["messages"][0]["content"]) for r in requests} == set(
        PARENTS
    )
    waiting = cli(server, "evolve", "--batch", "--rounds", "2", "--ops", "deepen").output
    assert re.search(r"waiting +1 evolve in_progress", waiting) and "submitted" not in waiting
    server.finish_batches()
    second = cli(server, "evolve", "--batch", "--rounds", "2", "--ops", "deepen")
    assert second.exit_code == 0, second.output
    assert re.search(r"evolved\s+4 new instructions, 0 rejected", second.output)
    assert re.search(r"submitted\s+4 requests in 1 file \(evolve 4\)", second.output)  # round 2
    assert {r["parent"] for r in evolved()} == {p.id for p in parents}
    server.finish_batches()
    assert cli(server, "evolve", "--batch", "--rounds", "2", "--ops", "deepen").exit_code == 0
    records = evolved()
    assert [r["round"] for r in records] == [1] * 4 + [2] * 4
    # the same requests as online: evolve and a cleared pool find every answer in the cache
    server.requests.clear()
    path = Path("data/instructions.jsonl")
    path.write_text("".join(line + "\n" for line in path.read_text().splitlines()[:4]))
    online = cli(server, "evolve", "--rounds", "2", "--ops", "deepen")
    assert online.exit_code == 0 and server.requests == []
    assert "0 sent, 8 from cache" in online.output
    fields = ("id", "instruction", "parent", "operation", "round")
    assert {tuple(r[f] for f in fields) for r in evolved()} == {
        tuple(r[f] for f in fields) for r in records
    }
    spent = json.loads(Path("data/run.json").read_text())["stages"]["evolve"]["totals"]
    assert spent["batched"] == 8
