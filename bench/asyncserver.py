"""The fake server's replies behind an asyncio HTTP/1.1 front, for throughput benchmarks.

tests/fakeserver.py serves each request on a thread: right for fault injection, but at a few
hundred requests a second its threads queue for the GIL and every reply comes late, which
would charge the server's delay to the pipeline. Here one event loop sleeps the latency and
answers with the same JSON (`FakeOpenAI`'s chat and completions routes, no faults).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from tests.fakeserver import FakeOpenAI

ROUTES = {"/v1/chat/completions": FakeOpenAI._chat, "/v1/completions": FakeOpenAI._completions}


class AsyncFakeServer:
    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.fake = FakeOpenAI(latency=latency)  # its replies only; never started
        self.arrivals: list[float] = []

    async def start(self) -> str:
        server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:  # clients do not pipeline: one request at a time per connection
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
                length = int({k.lower(): v for k, v in headers.items()}.get("content-length", 0))
                body = json.loads(await reader.readexactly(length)) if length else {}
                self.arrivals.append(time.monotonic())
                await asyncio.sleep(self.latency)
                payload = json.dumps(ROUTES[path](self.fake, body, None)).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload)
                )
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def serve(latency: float, ready: Any, commands: Any) -> None:
    """Run in a child process; on "arrivals", report the arrival times since the last report."""

    async def main() -> None:
        server = AsyncFakeServer(latency)
        ready.put(await server.start())
        loop = asyncio.get_running_loop()
        seen = 0
        while await loop.run_in_executor(None, commands.get) == "arrivals":
            ready.put(sorted(server.arrivals[seen:]))
            seen = len(server.arrivals)

    asyncio.run(main())
