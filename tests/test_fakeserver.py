"""The fake server, driven by the real openai client (sync and async) over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import random
import re
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types import Completion
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam
from rouge_score import rouge_scorer

from tests.fakecorpus import make_instruction
from tests.fakeserver import (
    ALL_FAULTS,
    FakeOpenAI,
    default_reply,
    estimate_tokens,
    fixed_reply,
    iter_items,
    numbered_reply,
    sequence_reply,
)
from tests.pooldata import KEY, MakeServer

USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say something."}]
REFERENCE_STOP = ["\n\n", "\n16", "16.", "16 ."]  # the paper's: at most 7 new items after "9."
FAST_FAULTS = tuple(f for f in ALL_FAULTS if f != "hang")


def connect(server: FakeOpenAI, *, key: str = KEY, timeout: float = 5.0) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0, timeout=timeout)


def chat(server: FakeOpenAI, **kwargs: Any) -> ChatCompletion:
    with connect(server) as client:
        options = {"model": "gpt-test", "messages": USER, **kwargs}
        response: ChatCompletion = client.chat.completions.create(**options)
        return response


def complete(server: FakeOpenAI, **kwargs: Any) -> Completion:
    with connect(server) as client:
        options = {"model": "davinci-test", "prompt": "Hi", **kwargs}
        response: Completion = client.completions.create(**options)
        return response


def raw_request(server: FakeOpenAI, method: str, path: str, body: bytes = b"") -> tuple[int, Any]:
    """A request the openai client would never send (no key, broken JSON, unknown path)."""
    port = int(server.base_url.rsplit(":", 1)[1].split("/")[0])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


CONTINUATION_PROMPT = "Come up with a series of tasks:\n" + "".join(
    f"{i}. {text}\n"
    for i, text in enumerate(
        [
            "Suggest a name for a bakery that specializes in sourdough bread.",
            "Explain how a bicycle gear system makes climbing hills easier.",
            "Give three tips for keeping houseplants alive during winter.",
            "Classify the following sentence as a question or a statement.",
            "Translate the phrase below into Spanish.",
            "Summarize the main argument of the paragraph in one sentence.",
            "Compose a short thank-you note to a neighbour who watered my garden.",
            "List the planets of the solar system in order of distance from the sun.",
        ],
        start=1,
    )
)


# --- normal replies ---------------------------------------------------------------------


def test_chat_completion_has_the_openai_shape(make_server: MakeServer) -> None:
    server = make_server(reply=fixed_reply("The quick brown fox jumps"))
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Describe a fox in five words."},
    ]
    response = chat(server, messages=messages)

    assert response.id.startswith("chatcmpl-")
    assert response.object == "chat.completion"
    assert response.model == "gpt-test"
    [choice] = response.choices
    assert (choice.index, choice.finish_reason) == (0, "stop")
    assert choice.message.role == "assistant"
    assert choice.message.content == "The quick brown fox jumps"
    assert response.usage is not None
    prompt_tokens = estimate_tokens("You are terse. Describe a fox in five words.")
    assert response.usage.prompt_tokens == prompt_tokens == 12
    assert response.usage.completion_tokens == 7  # ceil(5 words * 1.3)
    assert response.usage.total_tokens == prompt_tokens + 7

    [request] = server.requests
    assert (request.method, request.path, request.status, request.fault) == (
        "POST",
        "/v1/chat/completions",
        200,
        None,
    )
    assert request.body is not None and request.body["messages"] == messages
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert server.completed() == [request]


def test_completions_give_one_choice_per_prompt(make_server: MakeServer) -> None:
    server = make_server(reply=lambda body: body["prompt"].upper())
    response = complete(server, prompt=["one two", "three"], n=2)

    assert response.object == "text_completion"
    assert response.id.startswith("cmpl-")
    assert response.model == "davinci-test"
    assert [(c.index, c.text, c.finish_reason) for c in response.choices] == [
        (0, "ONE TWO", "stop"),
        (1, "ONE TWO", "stop"),
        (2, "THREE", "stop"),
        (3, "THREE", "stop"),
    ]
    assert response.usage is not None
    assert response.usage.completion_tokens == 2 * 3 + 2 * 2
    assert response.usage.prompt_tokens == estimate_tokens("one two three")


def test_async_client_runs_requests_concurrently(make_server: MakeServer) -> None:
    server = make_server(reply=sequence_reply("first", "second"), latency=0.3)

    async def run() -> list[str]:
        async with openai.AsyncOpenAI(
            base_url=server.base_url, api_key=KEY, max_retries=0, timeout=5
        ) as client:
            chats, completions = await asyncio.gather(
                asyncio.gather(
                    *(client.chat.completions.create(model="m", messages=USER) for _ in range(4))
                ),
                asyncio.gather(
                    *(client.completions.create(model="m", prompt="x") for _ in range(4))
                ),
            )
        return [str(c.choices[0].message.content) for c in chats] + [
            c.choices[0].text for c in completions
        ]

    started = time.perf_counter()
    texts = asyncio.run(run())
    assert time.perf_counter() - started < 1.5  # 8 requests x 0.3 s latency, in parallel
    assert sorted(texts) == ["first"] + ["second"] * 7
    assert len(server.completed()) == 8


def test_models_list_names_the_allowed_models(make_server: MakeServer) -> None:
    server = make_server(models=["gpt-a", "gpt-b"])
    with connect(server) as client:
        assert [m.id for m in client.models.list()] == ["gpt-a", "gpt-b"]


@pytest.mark.parametrize(
    ("stop", "text", "reason"),
    [
        ("\n\n", "1. a\n2. b", "stop"),
        (["16.", "\n\n"], "1. a\n2. b", "stop"),  # the earliest occurrence wins
        ("b\n", "1. a\n2. ", "stop"),
        ("never", "1. a\n2. b\n\n16. c", "stop"),
        (None, "1. a\n2. b\n\n16. c", "stop"),
    ],
)
@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_stop_sequences_cut_the_reply(
    make_server: MakeServer, endpoint: str, stop: Any, text: str, reason: str
) -> None:
    server = make_server(reply=fixed_reply("1. a\n2. b\n\n16. c"))
    if endpoint == "chat":
        choice = chat(server, stop=stop).choices[0]
        assert (choice.message.content, choice.finish_reason) == (text, reason)
    else:
        completion = complete(server, stop=stop).choices[0]
        assert (completion.text, completion.finish_reason) == (text, reason)


def test_max_tokens_truncates_with_finish_reason_length(make_server: MakeServer) -> None:
    words = "one two three four five six seven eight nine ten"
    server = make_server(reply=fixed_reply(words))

    short = complete(server, max_tokens=5)
    assert (short.choices[0].text, short.choices[0].finish_reason) == ("one two three", "length")
    assert short.usage is not None and short.usage.completion_tokens <= 5

    newer = chat(server, max_completion_tokens=9).choices[0]
    assert (newer.message.content, newer.finish_reason) == ("one two three four five six", "length")

    roomy = complete(server, max_tokens=13).choices[0]
    assert (roomy.text, roomy.finish_reason) == (words, "stop")


def test_a_stop_before_the_token_limit_wins(make_server: MakeServer) -> None:
    server = make_server(reply=fixed_reply("alpha beta\n\ngamma delta epsilon zeta eta theta"))
    choice = complete(server, max_tokens=4, stop="\n\n").choices[0]
    assert (choice.text, choice.finish_reason) == ("alpha beta", "stop")


# --- faults, as the client sees them -------------------------------------------------------


def test_429_is_a_rate_limit_error_with_retry_after(make_server: MakeServer) -> None:
    server = make_server(retry_after=0.25)
    server.script("429")
    with pytest.raises(openai.RateLimitError) as caught:
        chat(server)
    error = caught.value
    assert error.status_code == 429
    assert error.response.headers["retry-after"] == "0.25"
    assert error.response.headers["retry-after-ms"] == "250"
    assert error.type == "rate_limit_exceeded"
    assert error.code == "rate_limit_exceeded"
    assert server.requests[0].status == 429 and server.completed() == []


@pytest.mark.parametrize("fault", ["500", "503"])
def test_server_errors_are_internal_server_errors(make_server: MakeServer, fault: str) -> None:
    server = make_server()
    server.script(fault)
    with pytest.raises(openai.InternalServerError) as caught:
        complete(server)
    assert caught.value.status_code == int(fault)
    assert caught.value.type == "server_error"
    assert "Error code: " + fault in str(caught.value)


def test_hang_times_out_the_client_without_blocking_others(make_server: MakeServer) -> None:
    server = make_server(reply=fixed_reply("done"), hang_seconds=1.0)
    server.script("hang")
    started = time.perf_counter()
    with connect(server, timeout=0.2) as client, pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="m", messages=USER)
    assert time.perf_counter() - started < 0.8

    assert chat(server).choices[0].message.content == "done"  # while the first still sleeps
    assert time.perf_counter() - started < 0.9
    assert [r.fault for r in server.requests] == ["hang", None]
    assert server.completed() == [server.requests[1]]
    time.sleep(1.2 - (time.perf_counter() - started))
    assert server.requests[0].status is None  # the late reply found the client gone


def test_hang_replies_normally_to_a_patient_client(make_server: MakeServer) -> None:
    server = make_server(reply=fixed_reply("late"), hang_seconds=0.2)
    server.script("hang")
    assert chat(server).choices[0].message.content == "late"
    assert server.completed() == server.requests


def test_drop_is_a_connection_error(make_server: MakeServer) -> None:
    server = make_server()
    server.script("drop")
    with pytest.raises(openai.APIConnectionError) as caught:
        chat(server)
    assert not isinstance(caught.value, openai.APITimeoutError)
    assert type(caught.value.__cause__).__name__ == "RemoteProtocolError"
    assert server.requests[0].status is None


@pytest.mark.parametrize("endpoint", [chat, complete])
def test_malformed_json_raises_a_bare_json_decode_error(
    make_server: MakeServer, endpoint: Callable[..., Any]
) -> None:
    # openai 3.54 parses a 200 application/json body with json.loads and does not wrap the
    # error: callers must catch ValueError themselves, it is not an openai.OpenAIError.
    server = make_server()
    server.script("malformed")
    with pytest.raises(json.JSONDecodeError) as caught:
        endpoint(server)
    assert not isinstance(caught.value, openai.OpenAIError)
    assert server.requests[0].status == 200 and server.completed() == []


def test_malformed_json_in_the_async_client_too(make_server: MakeServer) -> None:
    server = make_server()
    server.script("malformed")

    async def run() -> None:
        async with openai.AsyncOpenAI(
            base_url=server.base_url, api_key=KEY, max_retries=0
        ) as client:
            await client.completions.create(model="m", prompt="x")

    with pytest.raises(json.JSONDecodeError):
        asyncio.run(run())


def test_length_fault_cuts_the_reply_in_half(make_server: MakeServer) -> None:
    server = make_server(reply=fixed_reply("a b c d e f g h"))
    server.script("length")
    choice = chat(server).choices[0]
    assert (choice.message.content, choice.finish_reason) == ("a b c d", "length")
    assert len(server.completed()) == 1  # a usable, if truncated, reply


def test_async_client_sees_the_same_faults(make_server: MakeServer) -> None:
    server = make_server(hang_seconds=1.0)
    server.script("429", "500", "drop", "hang")
    expected = [
        openai.RateLimitError,
        openai.InternalServerError,
        openai.APIConnectionError,
        openai.APITimeoutError,
    ]

    async def run() -> list[type[BaseException]]:
        raised: list[type[BaseException]] = []
        async with openai.AsyncOpenAI(
            base_url=server.base_url, api_key=KEY, max_retries=0, timeout=0.2
        ) as client:
            for _ in expected:
                try:
                    await client.completions.create(model="m", prompt="x")
                except openai.APIError as error:
                    raised.append(type(error))
        return raised

    assert asyncio.run(run()) == expected


# --- auth, models, bad requests ------------------------------------------------------------


def test_wrong_key_is_401_and_never_echoed(make_server: MakeServer) -> None:
    server = make_server()
    with (
        connect(server, key="sk-wrong-secret") as client,
        pytest.raises(openai.AuthenticationError) as caught,
    ):
        client.models.list()
    error = caught.value
    assert error.status_code == 401
    assert error.code == "invalid_api_key"
    assert error.type == "invalid_request_error"
    assert str(error.message).startswith("Error code: 401 - Incorrect API key provided")
    assert "sk-wrong-secret" not in error.response.text
    assert server.requests[0].fault is None  # a refused request consumes no scripted fault


def test_missing_key_is_401_and_no_key_server_accepts_anything(make_server: MakeServer) -> None:
    server = make_server()
    status, body = raw_request(server, "GET", "/v1/models")
    assert (status, body["error"]["code"]) == (401, "invalid_api_key")

    open_server = make_server(api_key=None)
    assert raw_request(open_server, "GET", "/v1/models")[0] == 200


def test_unknown_model_is_404_with_an_allow_list(make_server: MakeServer) -> None:
    server = make_server(models=["gpt-known"])
    with pytest.raises(openai.NotFoundError) as caught:
        chat(server, model="gpt-unknown")
    assert caught.value.code == "model_not_found"
    assert "`gpt-unknown` does not exist" in str(caught.value)
    assert chat(server, model="gpt-known").model == "gpt-known"


def test_bad_requests_get_openai_style_errors(make_server: MakeServer) -> None:
    server = make_server(api_key=None)
    assert raw_request(server, "GET", "/v1/nothing") == (
        404,
        {
            "error": {
                "message": "Invalid URL (GET /v1/nothing)",
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
        },
    )
    status, body = raw_request(server, "POST", "/v1/chat/completions", b"{not json")
    assert (status, body["error"]["type"]) == (400, "invalid_request_error")
    with pytest.raises(openai.BadRequestError, match="stream=true is not supported"):
        chat(server, stream=True)
    assert [r.body for r in server.requests][1] is None


def test_a_failing_reply_callable_is_a_500_that_names_the_error(
    make_server: MakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(body: dict[str, Any]) -> str:
        raise KeyError("prompt")

    server = make_server(reply=broken)
    with pytest.raises(openai.InternalServerError, match="the reply callable raised KeyError"):
        complete(server)
    assert "KeyError" in capsys.readouterr().err


# --- scripting and randomness --------------------------------------------------------------


def test_script_applies_faults_in_order_then_fault_rate(make_server: MakeServer) -> None:
    server = make_server(reply=fixed_reply("ok"))
    server.script("500", None)
    server.script("429")
    outcomes: list[str] = []
    for _ in range(4):
        try:
            outcomes.append(str(chat(server).choices[0].message.content))
        except openai.APIStatusError as error:
            outcomes.append(str(error.status_code))
    assert outcomes == ["500", "ok", "429", "ok"]
    assert [r.fault for r in server.requests] == ["500", None, "429", None]
    assert server.completed() == [server.requests[1], server.requests[3]]


def test_script_rejects_unknown_faults(fake_server: FakeOpenAI) -> None:
    with pytest.raises(ValueError, match="unknown faults \\['404'\\]"):
        fake_server.script("404")


def fault_sequence(server: FakeOpenAI, count: int) -> list[str | None]:
    with connect(server) as client:
        for _ in range(count):
            with contextlib.suppress(openai.APIError, ValueError):
                client.completions.create(model="m", prompt="x")
    return [r.fault for r in server.requests]


def test_fault_rate_is_reproducible_given_the_seed(make_server: MakeServer) -> None:
    options = {"fault_rate": 0.5, "fault_kinds": FAST_FAULTS, "reply": fixed_reply("ok")}
    first = fault_sequence(make_server(seed=7, **options), 40)
    again = fault_sequence(make_server(seed=7, **options), 40)
    other = fault_sequence(make_server(seed=8, **options), 40)

    assert first == again
    assert first != other
    assert 8 <= sum(f is not None for f in first) <= 32
    assert {f for f in first if f} <= set(FAST_FAULTS)


# --- the default toy model -----------------------------------------------------------------


def test_default_reply_continues_a_completions_list(fake_server: FakeOpenAI) -> None:
    text = complete(fake_server, prompt=CONTINUATION_PROMPT + "9.").choices[0].text
    assert text.startswith(" ") and not text.startswith(" 9")
    items = list(iter_items("9." + text))
    assert [n for n, _ in items] == list(range(9, 17))

    stopped = complete(fake_server, prompt=CONTINUATION_PROMPT + "9.", stop=REFERENCE_STOP)
    assert [n for n, _ in iter_items("9." + stopped.choices[0].text)] == list(range(9, 16))
    assert stopped.choices[0].finish_reason == "stop"


def test_default_reply_continues_a_chat_list(fake_server: FakeOpenAI) -> None:
    ask = CONTINUATION_PROMPT + "\nContinue the list with new, different tasks."
    text = str(
        chat(fake_server, messages=[{"role": "user", "content": ask}]).choices[0].message.content
    )
    assert text.startswith("9. ")
    assert [n for n, _ in iter_items(text)] == list(range(9, 17))


def test_identical_requests_get_different_items(fake_server: FakeOpenAI) -> None:
    texts = {
        complete(fake_server, prompt=CONTINUATION_PROMPT + "9.").choices[0].text for _ in range(3)
    }
    assert len(texts) == 3


def test_default_items_are_mostly_novel_and_sometimes_filterable(fake_server: FakeOpenAI) -> None:
    items: list[str] = []
    with connect(fake_server) as client:
        while len(items) < 200:
            completion = client.completions.create(
                model="m", prompt=[CONTINUATION_PROMPT + "9."] * 5, stop=REFERENCE_STOP
            )
            for choice in completion.choices:
                items += [text for _, text in iter_items("9." + choice.text)]

    bad = re.compile(r"\b(image|picture|graph|file|draw|plot|go to)\b|^Write a program", re.I)
    filterable = [t for t in items if bad.search(t) or len(t.split()) <= 3]
    assert 0.02 <= len(filterable) / len(items) <= 0.25
    assert all(8 <= len(t.split()) <= 25 for t in items if t not in filterable)

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    kept = [t for t in items if t not in filterable]
    near_copies = sum(
        max(scorer.score(earlier, text)["rougeL"].fmeasure for earlier in kept[:i]) > 0.7
        for i, text in enumerate(kept)
        if i > 0
    )
    assert near_copies < 0.05 * len(kept)


def test_make_instruction_rarely_repeats_itself_over_thousands() -> None:
    """A cheap check at scale (ROUGE-L over 5,000 would be slow): almost no exact repeats."""
    rng = random.Random(3)
    made = [make_instruction(rng, bad_rate=0) for _ in range(5000)]
    assert len(set(made)) > 4990


def test_default_reply_answers_the_classification_question(fake_server: FakeOpenAI) -> None:
    def ask(tasks: list[str]) -> list[str]:
        head = "Task: Translate the text.\nIs it classification? No\n\n"
        prompts = [f"{head}Task: {task}\nIs it classification?" for task in tasks]
        return [c.text for c in complete(fake_server, prompt=prompts).choices]

    tasks = [f"Decide whether review number {i} is positive or negative." for i in range(20)]
    answers = ask(tasks)
    assert set(answers) == {" Yes", " No"}
    assert ask(tasks) == answers  # fixed per task, however often asked
    ask_chat = [{"role": "user", "content": f"Task: {tasks[0]}\nIs it classification?"}]
    assert chat(fake_server, messages=ask_chat).choices[0].message.content == answers[0].strip()


def test_default_reply_writes_instances_in_the_prompt_format() -> None:
    labelled = default_reply(
        {
            "model": "m",
            "prompt": "Task: Classify the sentiment.\nClass label: Positive\nInput: Great!\n\n"
            "Task: Decide whether the tweet is sarcastic.\n",
        }
    )
    assert re.fullmatch(r"(Class label: [^\n]+\nInput: [^\n]+\n\n){2,3}", labelled)

    continued = default_reply(
        {"model": "m", "prompt": "Task: Decide whether the tweet is sarcastic.\nClass label:"}
    )
    assert continued.startswith(" ") and "\nInput: " in continued

    examples = default_reply(
        {
            "model": "m",
            "prompt": "Task: Give a synonym.\nExample 1\nInput: happy\nOutput: glad\n\n"
            "Task: Summarize the paragraph.\n",
        }
    )
    assert re.fullmatch(r"(Example \d\nInput: [^\n]+\nOutput: [^\n]+\n\n){2,3}", examples)
    assert examples.startswith("Example 1\n")


def test_numbered_reply_continues_with_given_items(make_server: MakeServer) -> None:
    server = make_server(reply=numbered_reply(["Alpha task here.", "Beta task here."]))
    text = complete(server, prompt="1. One.\n2. Two.\n3.").choices[0].text
    assert text == " Alpha task here.\n4. Beta task here."
    ask = [{"role": "user", "content": "1. One.\n2. Two.\nContinue."}]
    assert chat(server, messages=ask).choices[0].message.content == (
        "3. Alpha task here.\n4. Beta task here."
    )


# --- lifecycle and isolation ---------------------------------------------------------------


def test_stop_is_fast_even_with_a_hanging_request() -> None:
    server = FakeOpenAI(hang_seconds=30).start()
    server.script("hang")
    errors: list[BaseException] = []

    def call() -> None:
        try:
            chat(server)
        except openai.APIError as error:
            errors.append(error)

    thread = threading.Thread(target=call)
    thread.start()
    deadline = time.monotonic() + 2
    while not server.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.perf_counter()
    server.stop()
    assert time.perf_counter() - started < 1.0
    thread.join(timeout=2)
    assert not thread.is_alive()
    assert [type(e) for e in errors] == [openai.APIConnectionError]


def test_tests_are_isolated_and_offline(isolated: Path) -> None:
    assert Path.cwd() == isolated
    assert "OPENAI_API_KEY" not in os.environ
    assert not [name for name in os.environ if name.startswith("SELFINSTRUCT_")]
    with pytest.raises(OSError, match="network access blocked in tests: \\('example.com', 80\\)"):
        socket.create_connection(("example.com", 80))
    with socket.socket() as sock, pytest.raises(OSError, match="blocked in tests"):
        sock.connect(("192.0.2.1", 443))
