"""The webhook worker's HTTP/1.1 client against scripted endpoints on loopback.

An endpoint's answer is untrusted input: whatever it sends, the client reads a
bounded amount, returns a status or a clear error, and reuses a connection only
when the answer was read to its end.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from services.notifier.webhook_http import (
    MAX_BODY,
    MAX_HEAD,
    KeepAliveClient,
    ProtocolError,
    parse_target,
)

Answer = Callable[[bytes], bytes]
Start = Callable[[Answer], Awaitable[tuple["Scripted", str]]]


class Scripted:
    """Answers each request with ``answer(request)``; counts connections and requests."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[bytes] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                writer.write(self.answer(request))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def endpoint() -> AsyncIterator[Start]:
    servers: list[asyncio.Server] = []

    async def start(answer: Answer) -> tuple[Scripted, str]:
        scripted = Scripted(answer)
        server = await asyncio.start_server(scripted.serve, "127.0.0.1", 0)
        servers.append(server)
        return scripted, f"http://user:p%40ss@127.0.0.1:{server.sockets[0].getsockname()[1]}/h?k=1"

    yield start
    for server in servers:
        server.close()


async def _post(client: KeepAliveClient, url: str) -> tuple[int, str | None]:
    target = parse_target(url, "ua/1", "application/json")
    async with asyncio.timeout(5):
        return await client.post(target, b"webhook-id: m\r\n", b'{"a":1}', 5)


def _raw(answer: bytes) -> Answer:
    return lambda _: answer


def _ok(body: bytes) -> Answer:
    return lambda _: b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)


async def test_answers_read_to_their_end_reuse_one_connection(endpoint: Start) -> None:
    chunked = b"HTTP/1.1 202 Accepted\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx-t: 1\r\n\r\n"
    for answer in (_ok(b"x" * 1000), _raw(chunked)):
        scripted, url = await endpoint(answer)
        client = KeepAliveClient(connect_timeout=2)
        statuses = [(await _post(client, url))[0] for _ in range(5)]
        client.close()
        assert statuses in ([200] * 5, [202] * 5)
        assert scripted.connections == 1
    request = scripted.requests[0]
    assert request.startswith(b"POST /h?k=1 HTTP/1.1\r\n")
    assert b"authorization: Basic dXNlcjpwQHNz\r\n" in request  # user:p@ss
    assert request.endswith(b'\r\n\r\n{"a":1}')


async def test_a_long_body_or_a_close_is_not_reused_but_the_status_counts(endpoint: Start) -> None:
    long = _ok(b"x" * (MAX_BODY + 1))
    close = _raw(b"HTTP/1.1 503 Busy\r\nretry-after: 7\r\nconnection: close\r\n\r\n")
    interim = _raw(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")
    extra = _raw(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokEXTRA")
    chunks = _raw(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        + b"400\r\n"
        + b"x" * 1024
        + b"\r\n" * 1
        + (b"400\r\n" + b"x" * 1024 + b"\r\n") * 64
    )  # more than MAX_BODY in small chunks, never ended
    cases = [
        (long, (200, None), 3),
        (close, (503, "7"), 3),
        (interim, (204, None), 1),
        (extra, (200, None), 3),
        (chunks, (200, None), 3),
    ]
    for answer, expected, connections in cases:
        scripted, url = await endpoint(answer)
        client = KeepAliveClient(connect_timeout=2)
        for _ in range(3):
            assert await _post(client, url) == expected
        client.close()
        assert scripted.connections == connections


async def test_what_is_not_http_is_a_clear_error(endpoint: Start) -> None:
    answers = {
        b"HELLO\r\n\r\n": "not an HTTP/1.x answer",
        b"HTTP/1.1 200 OK\r\n" + b"x-pad: " + b"y" * MAX_HEAD + b"\r\n\r\n": "too large",
        b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n": "Content-Length",
        b"HTTP/1.1 abc OK\r\n\r\n": "no status code",
    }
    for raw, reason in answers.items():
        _, url = await endpoint(_raw(raw))
        client = KeepAliveClient(connect_timeout=2)
        with pytest.raises(ProtocolError, match=reason):
            await _post(client, url)
        client.close()


def test_a_url_with_control_characters_is_refused() -> None:
    with pytest.raises(ValueError, match=r"control characters|Invalid"):
        parse_target("http://example.org/a\r\nx-injected: 1", "ua/1", "application/json")


async def test_an_endpoint_that_never_answers_times_out(endpoint: Start) -> None:
    scripted, url = await endpoint(_raw(b""))
    client = KeepAliveClient(connect_timeout=2)
    target = parse_target(url, "ua/1", "application/json")
    async with asyncio.timeout(5):  # the test's bound, far above the request's
        with pytest.raises(TimeoutError):
            await client.post(target, b"webhook-id: m\r\n", b"{}", 0.3)
    client.close()
    assert len(scripted.requests) == 1
