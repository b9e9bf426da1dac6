"""The request cache: a reply is stored before it is used, and none is lost on close (with the
writer thread that busy runs use: transport.offloaded)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from selfinstruct.store.cache import Completion, RequestCache


def reply(i: int) -> Completion:
    return Completion(f"answer {i}", "stop", 10 + i, 2)


def test_a_reply_written_off_the_loop_is_readable_once_awaited(tmp_path: Path) -> None:
    cache = RequestCache(tmp_path / "cache.sqlite", writer_thread=True)

    async def store_then_read(i: int) -> Completion | None:
        await cache.aput(f"k{i}", "classify", {"body": {"n": i}}, reply(i), 0.0)
        return cache.get(f"k{i}")  # the loop's own connection sees the writer's commit

    async def main() -> list[Completion | None]:
        return await asyncio.gather(*(store_then_read(i) for i in range(200)))

    assert asyncio.run(main()) == [reply(i) for i in range(200)]
    cache.close()


def test_close_waits_for_every_write_handed_over(tmp_path: Path) -> None:
    cache = RequestCache(tmp_path / "cache.sqlite", writer_thread=True)

    async def main() -> None:
        writes = [
            asyncio.ensure_future(cache.aput(f"k{i}", "instances", {}, reply(i), None))
            for i in range(300)
        ]
        await asyncio.sleep(0)  # handed to the writer thread, not awaited
        for w in writes:
            w.cancel()  # as on a second Ctrl-C's grace: the thread still writes them

    asyncio.run(main())
    cache.close()
    again = RequestCache(tmp_path / "cache.sqlite")
    assert [p.key for p in again.pending("instances")] == [f"k{i}" for i in range(300)]
    assert again.get("k299") == reply(299)
    again.close()


def test_a_reply_cached_with_broken_unicode_reads_back_writable(tmp_path: Path) -> None:
    # As an older version stored it: the lone surrogate escaped in the JSON of the row.
    cache = RequestCache(tmp_path / "cache.sqlite")
    raw = '{"text": "sunrise \\ud83c here", "finish_reason": "stop", "prompt_tokens": 1, '
    cache.db.execute(
        "INSERT INTO responses (key, stage, request, response, created) VALUES (?, ?, ?, ?, 0)",
        ("k", "generate", '{"body": {}, "meta": {}}', raw + '"completion_tokens": 1}'),
    )
    for completion in (cache.get("k"), cache.pending("generate")[0].completion):
        assert completion is not None and completion.text == "sunrise \ufffd here"
        completion.text.encode()  # what every pool write does
    cache.close()
