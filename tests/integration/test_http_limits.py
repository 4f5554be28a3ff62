"""Slow and numerous clients: half-sent requests are closed, connections are capped.

The API runs on a real uvicorn server with short limits; the clients are raw sockets
that send requests in pieces, as a slowloris attack would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from services.bootstrap import Runtime
from services.entrypoints.http import create_app
from services.entrypoints.http_limits import HttpLimits
from services.entrypoints.serve import ApiServer

SHORT = HttpLimits(header_timeout=0.5, body_timeout=0.5, keep_alive=5, max_connections=50)
GIVE_UP = 15.0
"""Seconds after which a connection the server should have closed counts as kept open."""


@asynccontextmanager
async def _serving(runtime: Runtime, limits: HttpLimits) -> AsyncIterator[tuple[str, int]]:
    server = ApiServer(create_app(runtime.deps()), "127.0.0.1", 0, limits)
    host, _, port = (await server.start()).removeprefix("http://").rpartition(":")
    try:
        yield host, int(port)
    finally:
        await server.stop()


async def _connect(
    address: tuple[str, int],
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(*address)


async def _closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """What the server sent before closing the connection (fails if it keeps it open)."""
    async with asyncio.timeout(GIVE_UP):
        return await reader.read()


async def _trickle(writer: asyncio.StreamWriter, pieces: list[bytes]) -> None:
    """Send ``pieces`` slowly, until they run out or the server closes the connection."""
    for piece in pieces:
        if writer.is_closing():
            return
        writer.write(piece)
        try:
            await writer.drain()
        except ConnectionError:
            return
        await asyncio.sleep(0.1)


async def test_a_half_sent_request_head_is_closed(runtime: Runtime) -> None:
    async with _serving(runtime, SHORT) as address:
        reader, writer = await _connect(address)
        headers = [b"GET /healthz HTTP/1.1\r\n", b"Host: liaison\r\n"]
        headers += [f"X-Slow-{i}: still sending\r\n".encode() for i in range(100)]
        sender = asyncio.create_task(_trickle(writer, headers))  # a byte now and then, ~10 s
        try:
            assert await _closed_by_server(reader) == b""  # long before the head is complete
        finally:
            sender.cancel()
            writer.close()
        async with httpx.AsyncClient(base_url=f"http://{address[0]}:{address[1]}") as client:
            assert (await client.get("/healthz")).status_code == 200  # others are served


async def test_a_half_sent_body_is_closed(runtime: Runtime) -> None:
    async with _serving(runtime, SHORT) as address:
        reader, writer = await _connect(address)
        writer.write(
            b"POST /v1/events HTTP/1.1\r\nHost: liaison\r\nContent-Type: application/json\r\n"
            b'Authorization: Bearer customs-token\r\nContent-Length: 1000\r\n\r\n{"specversion"'
        )
        await writer.drain()
        try:
            answer = await _closed_by_server(reader)
        finally:
            writer.close()
        assert b"202" not in answer


async def test_a_half_sent_second_request_on_a_kept_alive_connection_is_closed(
    runtime: Runtime,
) -> None:
    async with _serving(runtime, SHORT) as address:
        reader, writer = await _connect(address)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: liaison\r\n\r\n")
        await writer.drain()
        assert (await reader.readuntil(b'{"status":"ok"}')).startswith(b"HTTP/1.1 200")
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: li")  # and nothing more
        await writer.drain()
        try:
            assert await _closed_by_server(reader) == b""
        finally:
            writer.close()


async def test_connections_beyond_the_cap_are_refused(runtime: Runtime) -> None:
    limits = HttpLimits(header_timeout=GIVE_UP * 2, max_connections=3)
    async with _serving(runtime, limits) as address:
        held = [await _connect(address) for _ in range(3)]  # up to the cap, sending nothing
        beyond, beyond_writer = await _connect(address)
        assert await _closed_by_server(beyond) == b""  # closed at once, nothing read
        beyond_writer.close()
        reader, writer = held[0]  # while the cap is reached, requests are refused
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: liaison\r\n\r\n")
        await writer.drain()
        assert (await reader.readline()).startswith(b"HTTP/1.1 503")
        for _reader, held_writer in held:
            held_writer.close()
        async with httpx.AsyncClient(base_url=f"http://{address[0]}:{address[1]}") as client:

            async def served() -> bool:
                return (await client.get("/healthz")).status_code == 200

            async with asyncio.timeout(GIVE_UP):
                while not await served():  # once the server noticed the closed ones
                    await asyncio.sleep(0.05)
