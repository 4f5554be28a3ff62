"""A real HTTP/1.1 webhook receiver on loopback (h11), counting connections and requests.

Every answer carries a small body, as real endpoints do: a sender that does not read
it cannot reuse the connection.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

import h11

ANSWER = b'{"ok":true}'


@dataclass
class Seen:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 200


@dataclass
class CountingReceiver:
    """Answers 200 to every POST; counts TCP connections accepted and requests by webhook-id."""

    delay: float = 0.0
    """Seconds each answer waits (a slow endpoint: work piles up in flight)."""
    retry_first: frozenset[str] = frozenset()
    """Paths whose first request of each ``webhook-id`` is answered 503, ``Retry-After: 2``."""
    connections: int = 0
    requests: list[Seen] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _open: set[asyncio.StreamWriter] = field(default_factory=set)

    async def start(self) -> str:
        """Listen on a free loopback port; return the base URL."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
            for writer in list(self._open):
                writer.close()
            await self._server.wait_closed()

    def by_id(self) -> Counter[str]:
        """Requests per ``webhook-id``."""
        return Counter(r.headers["webhook-id"] for r in self.requests)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._open.add(writer)
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await reader.read(65536)
                    conn.receive_data(data)
                    if not data:
                        return
                    continue
                if isinstance(event, h11.ConnectionClosed):
                    return
                if isinstance(event, h11.Request):
                    request, body = event, b""
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    headers = {k.decode(): v.decode() for k, v in request.headers}
                    seen = Seen(request.target.decode(), headers, body)
                    if seen.path in self.retry_first and not any(
                        r.path == seen.path and r.headers["webhook-id"] == headers["webhook-id"]
                        for r in self.requests
                    ):
                        seen.status = 503
                    self.requests.append(seen)
                    if self.delay:
                        await asyncio.sleep(self.delay)
                    answer = [
                        ("content-type", "application/json"),
                        ("content-length", str(len(ANSWER))),
                    ]
                    if seen.status == 503:
                        answer.append(("retry-after", "2"))
                    response = h11.Response(status_code=seen.status, headers=answer)
                    writer.write(conn.send(response) or b"")
                    writer.write(conn.send(h11.Data(data=ANSWER)) or b"")
                    writer.write(conn.send(h11.EndOfMessage()) or b"")
                    await writer.drain()
                    if conn.our_state is h11.MUST_CLOSE:
                        return
                    conn.start_next_cycle()
        except (h11.RemoteProtocolError, ConnectionError):
            return
        finally:
            self._open.discard(writer)
            writer.close()
