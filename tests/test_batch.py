"""Batch mode end to end: the real openai client, through the CLI, against the fake server."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import openai
import pytest
from typer.testing import Result

from selfinstruct.llm import batchfiles
from selfinstruct.models import BatchRequest
from tests.fakeserver import FakeOpenAI, Recorded, default_reply, prompt_text
from tests.pooldata import FAST, KEY, MakeServer, lines, write_config, write_seeds
from tests.pooldata import invoke as cli


@pytest.fixture(autouse=True)
def setup() -> None:
    write_config(FAST)
    write_seeds()


def ok(server: FakeOpenAI | None, *args: str) -> Result:
    result = cli(server, *args)
    assert result.exit_code == 0, result.output
    return result


def calls(server: FakeOpenAI, method: str, path: str) -> list[Recorded]:
    return [r for r in server.requests if r.method == method and r.path == path]


def latest(file: str | None = None) -> dict[str, dict[str, Any]]:
    """The ledger folded to the last state per batch file."""
    return {e["file"]: e for e in lines("data/batches.jsonl") if file in (None, e["file"])}


def uploaded(server: FakeOpenAI) -> list[list[dict[str, Any]]]:
    """The input files the server received, as lists of request lines."""
    store = server.files_batches
    return [store.lines(f) for f, meta in store.files.items() if meta["purpose"] == "batch"]


def pool_with(server: FakeOpenAI, n: int, *stages: str) -> None:
    """A pool of n instructions made online (and classified, ...), the server's log cleared."""
    ok(server, "generate", "--seeds", "seeds.jsonl", "-n", str(n), "--seed", "0", "--no-progress")
    for stage in stages:
        ok(server, stage, "--no-progress")
    server.requests.clear()


def snapshot() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in Path("data").glob("*.jsonl")}


def test_each_stage_round_trip_matches_the_online_path(make_server: MakeServer) -> None:
    server = make_server()
    first = ok(server, "generate", "--batch", "--seeds", "seeds.jsonl", "-n", "12", "--seed", "1")
    assert re.search(r"submitted\s+4 requests in 1 file \(generate 4\)", first.stdout)
    assert not calls(server, "POST", "/v1/chat/completions")  # nothing went online
    [requests] = uploaded(server)
    assert {r["url"] for r in requests} == {"/v1/chat/completions"}
    assert all(r["method"] == "POST" and r["body"]["model"] == "gpt-4o-mini" for r in requests)
    while server.finish_batches():
        result = ok(server, "generate", "--batch", "-n", "12")
    assert re.search(r"instructions\s+12 / 12 \(\+\d+, \d+ rejected\)", result.stdout)
    assert len(lines("data/instructions.jsonl")) == 12
    for stage in ("classify", "instances"):
        ok(server, stage, "--batch")
        server.finish_batches()
        ok(server, stage, "--batch")
    assert len(lines("data/classifications.jsonl")) == len(lines("data/instances.jsonl")) == 12
    assert ok(server, "classify", "--batch").stdout.startswith("Nothing to do")
    # same prompts, params and keys as online: the online stages find every answer cached
    server.requests.clear()
    Path("data/instances.jsonl").write_text("")
    assert "Nothing to do" in ok(server, "classify", "--no-progress").stdout
    again = ok(server, "instances", "--no-progress")
    assert server.requests == [] and re.search(r"12 from cache", again.stdout)
    assert len(lines("data/instances.jsonl")) == 12


def test_run_batch_from_cron_reaches_the_target(make_server: MakeServer) -> None:
    server = make_server()
    ok(server, "run", "--batch", "--seeds", "seeds.jsonl", "-n", "25", "--seed", "3", "--quiet")
    for _ in range(8):
        if not server.finish_batches():
            break
        ok(server, "run", "--batch", "--quiet", "--log-file", "cron.log")
    final = ok(server, "run", "--batch")
    assert final.stdout == "Nothing to do: data is at its target of 25.\n"
    assert len(lines("data/dataset.jsonl")) > 25
    ids = [r["id"] for r in lines("data/instructions.jsonl")]
    assert len(ids) == len(set(ids)) == 25
    assert len(lines("data/instances.jsonl")) == 25
    assert "dataset" in Path("cron.log").read_text()
    assert not calls(server, "POST", "/v1/chat/completions")


def test_output_lines_are_matched_on_custom_id(make_server: MakeServer) -> None:
    server = make_server()
    pool_with(server, 15)
    ok(server, "classify", "--batch")
    [batch_id] = server.finish_batches(order="reversed")
    batch = server.files_batches.batches[batch_id]
    output = server.files_batches.lines(batch["output_file_id"])
    answers = {
        o["custom_id"]: o["response"]["body"]["choices"][0]["message"]["content"] for o in output
    }
    ok(server, "batch", "collect")
    records = lines("data/classifications.jsonl")
    assert len(records) == 15
    assert all(r["answer"] == answers[r["request"]] for r in records)


def test_failed_lines_are_asked_again_in_the_next_batch(make_server: MakeServer) -> None:
    server = make_server()
    pool_with(server, 10)
    ok(server, "classify", "--batch")
    [requests] = uploaded(server)
    failing = [r["custom_id"] for r in requests[:3]]
    server.finish_batches(fail_ids=failing)
    result = ok(server, "classify", "--batch")
    assert re.search(r"collected\s+1 batch: 7 responses, 3 failed", result.stdout)
    assert re.search(r"submitted\s+3 requests in 1 file", result.stdout)
    assert sorted(r["custom_id"] for r in uploaded(server)[1]) == sorted(failing)
    assert [f["request"] for f in lines("data/failures.jsonl")] == failing
    assert len(lines("data/classifications.jsonl")) == 7
    server.finish_batches()
    ok(server, "classify", "--batch")
    assert len({r["id"] for r in lines("data/classifications.jsonl")}) == 10


def test_a_batch_that_fails_or_expires_as_a_whole(make_server: MakeServer) -> None:
    server = make_server()
    pool_with(server, 8, "classify")
    ok(server, "instances", "--batch")
    server.finish_batches(fail="the model is overloaded")
    failed = ok(server, "instances", "--batch")
    assert re.search(r"batch_fake\d+\s+failed: the model is overloaded", failed.stdout)
    assert re.search(r"submitted\s+8 requests", failed.stdout)
    assert not lines("data/instances.jsonl")
    first, second = uploaded(server)
    assert first == second  # the same requests again, in a new batch of its own
    assert len(server.files_batches.batches) == 2
    server.finish_batches(expire=5)
    expired = ok(server, "instances", "--batch")
    assert re.search(r"collected\s+1 batch: 5 responses, 3 failed", expired.stdout)
    assert re.search(r"\s+expired", expired.stdout)
    assert len(lines("data/instances.jsonl")) == 5 and len(uploaded(server)[-1]) == 3
    server.finish_batches()
    ok(server, "instances", "--batch")
    assert len({r["id"] for r in lines("data/instances.jsonl")}) == 8


@pytest.mark.parametrize("route,fault", [("create", "500"), ("create", "lost"), ("upload", "lost")])
def test_a_failure_between_two_calls_neither_loses_nor_duplicates(
    make_server: MakeServer, route: str, fault: str
) -> None:
    server = make_server()
    pool_with(server, 6)
    server.files_batches.fail(route, fault)
    broken = cli(server, "batch", "submit", "--stage", "classify", "--max-retries", "0")
    assert broken.exit_code == 1
    assert broken.stderr.startswith("Error: ") and "500 Internal Server Error" in broken.stderr
    [state] = latest().values()
    assert state["state"] == ("creating" if route == "create" else "uploading")
    ok(server, "batch", "submit", "--stage", "classify")
    [state] = latest().values()
    assert state["state"] == "submitted"
    store = server.files_batches
    assert len(calls(server, "POST", "/v1/files")) == 1
    assert len([f for f in store.files.values() if f["purpose"] == "batch"]) == 1
    assert len(store.batches) == 1 and state["batch_id"] in store.batches
    assert len(calls(server, "POST", "/v1/batches")) == (1 if fault == "lost" else 2)
    server.finish_batches()
    ok(server, "batch", "collect")
    assert len(lines("data/classifications.jsonl")) == 6


def test_in_process_retries_check_the_server_before_creating_again(
    make_server: MakeServer,
) -> None:
    server = make_server()
    pool_with(server, 4)
    server.files_batches.fail("create", "500", "lost")
    ok(server, "batch", "submit", "--stage", "classify")
    assert len(server.files_batches.batches) == 1
    assert len(calls(server, "POST", "/v1/batches")) == 2
    assert [r.path for r in server.requests if r.method == "GET"] == ["/v1/batches"] * 2


def test_files_are_split_at_the_limits(
    make_server: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_server()
    pool_with(server, 20)
    monkeypatch.setattr(batchfiles, "MAX_REQUESTS", 7)
    ok(server, "batch", "submit", "--stage", "classify")
    assert sorted(len(f) for f in uploaded(server)) == [6, 7, 7]
    sizes = [
        len(batchfiles.upload_line(BatchRequest(**r, stage="classify")))
        for f in uploaded(server)
        for r in f
    ]
    monkeypatch.setattr(batchfiles, "MAX_REQUESTS", 50_000)
    monkeypatch.setattr(batchfiles, "MAX_BYTES", max(sizes) * 2)
    server.finish_batches(fail_ids=[r["custom_id"] for f in uploaded(server) for r in f])
    result = ok(server, "batch", "collect")
    assert re.search(r"collected\s+3 batches: 0 responses, 20 failed", result.stdout)
    ok(server, "batch", "submit", "--stage", "classify")
    again = uploaded(server)[3:]
    assert len(again) >= 10 and all(len(f) <= 2 for f in again)
    assert sum(map(len, again)) == 20
    names = [f["filename"] for f in server.files_batches.files.values() if f["purpose"] == "batch"]
    assert all(re.fullmatch(r"selfinstruct-classify-[0-9a-f]{16}\.jsonl", n) for n in names)
    server.finish_batches()
    ok(server, "batch", "collect")
    assert len(lines("data/classifications.jsonl")) == 20


def vllm_results(requests: Path, fail: int = 0) -> list[dict[str, Any]]:
    """What `vllm run-batch -i requests.jsonl -o results.jsonl` writes (the last `fail` lines
    as errors), answered by the fake server's toy model."""
    out = []
    for i, line in enumerate(lines(requests)):
        body, row = line["body"], {"id": f"vllm-{i:032x}", "custom_id": line["custom_id"]}
        if i >= len(lines(requests)) - fail:
            response = {"status_code": 400, "request_id": f"vllm-batch-{i}", "body": None}
            out.append({**row, "response": response, "error": "context length exceeded"})
            continue
        message = {"role": "assistant", "content": default_reply(body), "tool_calls": []}
        completion = {
            "id": f"chatcmpl-{i}",
            "object": "chat.completion",
            "created": 1,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": "stop",
                    "stop_reason": None,
                }
            ],
            "usage": {"prompt_tokens": 100, "total_tokens": 103, "completion_tokens": 3},
        }
        response = {"status_code": 200, "request_id": f"vllm-batch-{i}", "body": completion}
        out.append({**row, "response": response, "error": None})
    return out


def test_export_then_import_vllm_results(make_server: MakeServer) -> None:
    server = make_server()
    pool_with(server, 10)
    offline = ("--model", "Qwen/Qwen2.5-7B-Instruct")  # no key, no server: nothing is sent
    exported = ok(
        None, "batch", "export", "--out", "requests.jsonl", "--stage", "classify", *offline
    )
    assert re.search(r"exported\s+10 requests in 1 file \(classify 10\)", exported.stdout)
    requests = lines("requests.jsonl")
    assert [set(r) for r in requests] == [{"custom_id", "method", "url", "body"}] * 10
    assert {r["body"]["model"] for r in requests} == {"Qwen/Qwen2.5-7B-Instruct"}
    results = vllm_results(Path("requests.jsonl"), fail=2)
    Path("results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in reversed(results)))
    imported = ok(None, "batch", "import", "results.jsonl", *offline)
    assert re.search(r"imported\s+10 results \(0 unknown\)", imported.stdout)
    assert re.search(r"classified\s+\d+ yes, \d+ no, 0 unparsed", imported.stdout)
    assert len(lines("data/classifications.jsonl")) == 8
    assert "context length exceeded" in lines("data/failures.jsonl")[0]["error"]
    before = snapshot()
    assert ok(None, "batch", "import", "results.jsonl", *offline).stdout  # twice: no change
    assert snapshot() == {**before, "batches.jsonl": snapshot()["batches.jsonl"]}
    # the export is rebuildable: the two failed requests are what is left to export
    ok(None, "batch", "export", "--out", "rest.jsonl", "--stage", "classify", *offline)
    assert sorted(r["custom_id"] for r in lines("rest.jsonl")) == sorted(
        r["custom_id"] for r in results[-2:]
    )
    stranger = cli(None, "batch", "import", "rest.jsonl", *offline)  # requests, not results
    assert stranger.exit_code == 2 and "line 1" in stranger.stderr


def test_import_of_results_from_another_pool_is_refused(make_server: MakeServer) -> None:
    server = make_server()
    pool_with(server, 3)
    line = {"custom_id": "x", "response": None, "error": {"message": "no"}}
    Path("other.jsonl").write_text(json.dumps(line) + "\n")
    result = cli(None, "batch", "import", "other.jsonl")
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: other.jsonl: none of its 1 results answers a request of data; import what "
        "`selfinstruct batch export` wrote for this pool\n"
    )


def test_collecting_twice_writes_nothing_twice(make_server: MakeServer) -> None:
    server = make_server()
    ok(server, "generate", "--batch", "--seeds", "seeds.jsonl", "-n", "10", "--seed", "2")
    server.finish_batches()
    ok(server, "batch", "collect")
    written = snapshot()
    assert len(lines("data/instructions.jsonl")) == 10
    assert ok(server, "batch", "collect").stdout.startswith("Nothing to do")
    # as if the run had died after caching the results but before recording the collect
    ledger = Path("data/batches.jsonl").read_text().splitlines(keepends=True)
    Path("data/batches.jsonl").write_text("".join(ledger[:-1]))
    again = ok(server, "batch", "collect")
    assert re.search(r"instructions\s+10 / 10 \(\+0, 0 rejected\)", again.stdout)
    assert re.search(r"tokens\s+0 prompt \+ 0 completion", again.stdout)  # not counted twice
    assert {k: v for k, v in snapshot().items() if k != "batches.jsonl"} == {
        k: v for k, v in written.items() if k != "batches.jsonl"
    }


def test_batch_requests_cost_half(make_server: MakeServer) -> None:
    server = make_server()
    pool_with(server, 6)
    prices = ("--price-in", "1", "--price-out", "2")
    ok(server, "classify", "--batch", *prices)
    [batch_id] = server.finish_batches()
    output = server.files_batches.lines(server.files_batches.batches[batch_id]["output_file_id"])
    usage = [o["response"]["body"]["usage"] for o in output]
    full = sum(u["prompt_tokens"] * 1 + u["completion_tokens"] * 2 for u in usage) / 1e6
    result = ok(server, "classify", "--batch", *prices)
    assert re.search(
        rf"cost\s+\${full / 2:.4f} \(batch price: 50% of the online one\)", result.stdout
    )
    spent = json.loads(Path("data/run.json").read_text())["stages"]["classify"]["usage"]
    assert spent["cost"] == pytest.approx(full / 2) and spent["batched"] == 6


def test_budget_caps_what_is_submitted(make_server: MakeServer) -> None:
    server = make_server()
    pool_with(server, 9)
    result = cli(server, "classify", "--batch", "--max-requests", "4")
    assert result.exit_code == 3
    assert "Stopped: reached --max-requests 4; the pool is saved" in result.stderr
    assert [len(f) for f in uploaded(server)] == [4]
    prices = ("--price-in", "1", "--price-out", "1")
    capped = cli(server, "classify", "--batch", *prices, "--max-cost", "0.0005")
    assert capped.exit_code == 3 and "Stopped: reached --max-cost $0.00" in capped.stderr
    assert 0 < len(uploaded(server)[1]) < 5  # the 4 in the open batch are not sent again


def test_status_shows_each_batch(make_server: MakeServer) -> None:
    server = make_server()
    pool_with(server, 5)
    assert ok(server, "batch", "status").stdout == "No batches in data.\n"
    ok(server, "batch", "submit")
    table = ok(server, "batch", "status").stdout.splitlines()
    assert table[0].split() == [
        "file",
        "stage",
        "state",
        "status",
        "completed",
        "failed",
        "total",
        "batch",
    ]
    assert re.match(
        r"selfinstruct-classify-\w+\.jsonl\s+classify\s+submitted\s+in_progress"
        r"\s+0\s+0\s+5\s+batch_fake\d+$",
        table[1],
    )
    server.finish_batches(fail_ids=[uploaded(server)[0][0]["custom_id"]])
    [row] = json.loads(ok(server, "batch", "status", "--json").stdout)
    assert (row["state"], row["status"], row["completed"], row["failed"]) == (
        "submitted",
        "completed",
        4,
        1,
    )
    status = json.loads(ok(None, "status", "--json").stdout)["batches"]
    assert status == {"open": 1, "requests": 5, "stages": ["classify"]}
    assert re.search(r"batches\s+1 open \(5 requests; classify\)", ok(None, "status").stdout)
    ok(server, "batch", "collect")
    assert json.loads(ok(None, "status", "--json").stdout)["batches"]["open"] == 0
    assert re.search(r"batches\s+none open", ok(None, "status").stdout)
    [row] = json.loads(ok(server, "batch", "status", "--json").stdout)
    assert (row["state"], row["status"], row["completed"], row["failed"]) == (
        "collected",
        "completed",
        4,
        1,
    )


def test_unknown_stage_is_a_usage_error(make_server: MakeServer) -> None:
    server = make_server()
    result = cli(server, "batch", "submit", "--stage", "filter")
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: unknown --stage 'filter'; choose generate, classify, instances or auto\n"
    )


def test_a_cancelled_batch_and_the_completions_api(make_server: MakeServer) -> None:
    server = make_server()
    pool_with(server, 5)
    ok(server, "classify", "--batch", "--api", "completions")
    [requests] = uploaded(server)
    assert {r["url"] for r in requests} == {"/v1/completions"}
    assert all(r["body"]["prompt"].endswith("Is it classification?") for r in requests)
    [batch] = openai.OpenAI(api_key=KEY, base_url=server.base_url).batches.list()
    assert batch.request_counts is not None and batch.request_counts.total == 5
    cancelled = openai.OpenAI(api_key=KEY, base_url=server.base_url).batches.cancel(batch.id)
    assert cancelled.status == "cancelled"
    result = ok(server, "classify", "--batch", "--api", "completions")
    assert re.search(rf"{batch.id}\s+cancelled", result.stdout)
    assert re.search(r"submitted\s+5 requests", result.stdout)
    server.finish_batches()
    ok(server, "classify", "--batch", "--api", "completions")
    assert len(lines("data/classifications.jsonl")) == 5


def test_the_fake_files_endpoints_speak_the_client_s_types(make_server: MakeServer) -> None:
    server = make_server()
    client = openai.OpenAI(api_key=KEY, base_url=server.base_url, max_retries=0)
    line = {
        "custom_id": "a",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]},
    }
    data = (json.dumps(line) + "\n").encode()
    file = client.files.create(file=("in.jsonl", data, "application/jsonl"), purpose="batch")
    assert (file.filename, file.bytes, file.purpose) == ("in.jsonl", len(data), "batch")
    assert [f.id for f in client.files.list(purpose="batch")] == [file.id]
    assert client.files.retrieve(file.id).id == file.id
    batch = client.batches.create(
        input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert client.batches.retrieve(batch.id).status == "in_progress"
    server.finish_batches()
    done = client.batches.retrieve(batch.id)
    assert done.status == "completed" and done.output_file_id and done.error_file_id is None
    [out] = [json.loads(x) for x in client.files.content(done.output_file_id).content.splitlines()]
    assert out["custom_id"] == "a" and out["response"]["status_code"] == 200
    assert out["response"]["body"]["choices"][0]["message"]["content"]
    with pytest.raises(openai.NotFoundError):
        client.files.content("file-missing")
    duplicated = client.files.create(file=("dup.jsonl", data * 2, "text/plain"), purpose="batch")
    failed = client.batches.create(
        input_file_id=duplicated.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert failed.status == "failed" and failed.errors and failed.errors.data
    assert "duplicate custom_id" in str(failed.errors.data[0].message)


def test_stage_1_rounds_through_an_offline_engine() -> None:
    start = ("--seeds", "seeds.jsonl", "--seed", "4", "-n", "10")
    exported = ok(None, "batch", "export", "--out", "r1.jsonl", "--stage", "generate", *start)
    assert re.search(r"exported\s+4 requests in 1 file \(generate 4\)", exported.stdout)
    Path("o1.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in vllm_results(Path("r1.jsonl")))
    )
    imported = ok(None, "batch", "import", "o1.jsonl")
    assert re.search(r"instructions\s+10 / 10 \(\+10, \d+ rejected\)", imported.stdout)
    assert len(lines("data/instructions.jsonl")) == 10
    assert ok(None, "batch", "export", "--out", "r2.jsonl", "--stage", "generate").stdout == (
        "Nothing to do: no batch is open and no stage has requests to send.\n"
    )


def test_online_stages_leave_open_batches_alone(make_server: MakeServer) -> None:
    server = make_server()
    ok(server, "generate", "--seeds", "seeds.jsonl", "-n", "6", "--no-progress")
    ok(server, "batch", "submit", "--stage", "classify")  # 6 requests wait in an open batch
    server.requests.clear()
    online = ok(server, "classify", "--no-progress")
    assert online.stdout.startswith("Nothing to send: 6 instructions wait in open batches")
    assert not calls(server, "POST", "/v1/chat/completions")  # none bought a second time
    ok(server, "generate", "-n", "8", "--no-progress")  # two more, not in any batch
    server.requests.clear()
    mixed = ok(server, "run", "-n", "8")
    assert re.search(r"in open batches\s+6 \(left to `selfinstruct batch collect`\)", mixed.stdout)
    asked = [prompt_text(b) for b in server.bodies("/v1/chat/completions")]
    batched = {r["body"]["messages"][-1]["content"] for r in uploaded(server)[0]}
    assert not batched & set(asked)  # the run classified only the two new ones
    server.finish_batches()
    ok(server, "batch", "collect")
    assert len(lines("data/classifications.jsonl")) == 8
    assert ok(server, "classify", "--no-progress").stdout.startswith("Nothing to do")
