"""Raw limits of the Redis-compatible server: pipelined XADD, XREADGROUP+XACK in batches.

XADD is measured twice: through redis-py (the product's client, whose
per-command packing and reply parsing dominate) and as RESP packed before the
clock starts, written to a plain socket, replies only counted — the server's
own limit on this machine.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit

from redis.asyncio import Redis

from services.core.streams import EVENT_FIELD

KEY = "bench:raw:stream"
GROUP = "bench"
PIPELINE = 1000
READ_BATCH = 500


async def xadd_pipelined(redis: Redis, wire: Sequence[bytes]) -> float:
    """Seconds to XADD every payload, ``PIPELINE`` commands per round trip."""
    await redis.delete(KEY)
    start = time.perf_counter()
    for i in range(0, len(wire), PIPELINE):
        pipe = redis.pipeline(transaction=False)
        for payload in wire[i : i + PIPELINE]:
            pipe.xadd(KEY, {EVENT_FIELD: payload})
        await pipe.execute()
    elapsed = time.perf_counter() - start
    await redis.delete(KEY)
    return elapsed


def _resp(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


async def xadd_prepacked(url: str, wire: Sequence[bytes]) -> float:
    """Seconds to XADD every payload as pre-packed RESP, ``PIPELINE`` per write."""
    parts = urlsplit(url)
    if parts.scheme == "unix":  # the embedded server listens on its socket only
        reader, writer = await asyncio.open_unix_connection(unquote(parts.path))
    else:
        reader, writer = await asyncio.open_connection(
            parts.hostname or "127.0.0.1", parts.port or 6379
        )
    setup = [_resp(b"AUTH", parts.password.encode())] if parts.password else []
    setup += [
        _resp(b"SELECT", _database(parts).encode()),
        _resp(b"DEL", KEY.encode()),
    ]
    field = EVENT_FIELD.encode()
    chunks = [
        b"".join(_resp(b"XADD", KEY.encode(), b"*", field, p) for p in wire[i : i + PIPELINE])
        for i in range(0, len(wire), PIPELINE)
    ]
    try:
        writer.write(b"".join(setup))
        await _replies(reader, len(setup))
        start = time.perf_counter()
        for i, chunk in enumerate(chunks):
            writer.write(chunk)
            await _replies(reader, min(PIPELINE, len(wire) - i * PIPELINE), lines=2)
        return time.perf_counter() - start
    finally:
        writer.close()
        await writer.wait_closed()


def _database(parts: SplitResult) -> str:
    """The database number of a ``redis://host/N`` or ``unix:///path?db=N`` URL."""
    if parts.scheme == "unix":
        return parse_qs(parts.query).get("db", ["0"])[0]
    return parts.path.strip("/") or "0"


async def _replies(reader: asyncio.StreamReader, count: int, lines: int = 1) -> None:
    """Read ``count`` replies of ``lines`` CRLF-terminated lines each (``$n``, the id)."""
    seen, expected, tail = 0, count * lines, b""
    while seen < expected:
        data = await asyncio.wait_for(reader.read(1 << 16), 30)
        if not data or data.startswith(b"-") or b"\r\n-" in data:
            raise RuntimeError(f"raw XADD: {data[:200]!r}")
        seen += (tail + data).count(b"\r\n")  # a CRLF may straddle two reads
        tail = data[-1:]


async def xreadgroup_xack(redis: Redis, n: int) -> float:
    """Seconds for one consumer to read and acknowledge the ``n`` entries that
    :func:`xadd_prepacked` left in the stream, 500 at a time."""
    await redis.xgroup_create(KEY, GROUP, id="0", mkstream=True)
    seen = 0
    start = time.perf_counter()
    while seen < n:
        reply: Any = await redis.xreadgroup(GROUP, "raw", {KEY: ">"}, count=READ_BATCH)
        if not reply:
            raise RuntimeError(f"raw XREADGROUP: stream ran dry after {seen} of {n} entries")
        ids = [entry_id for entry_id, _fields in reply[0][1]]
        await redis.xack(KEY, GROUP, *ids)
        seen += len(ids)
    elapsed = time.perf_counter() - start
    await redis.delete(KEY)
    return elapsed


async def server_version(redis: Redis) -> str:
    """``valkey 9.0.1`` or ``redis 7.4.2``."""
    info = await redis.info("server")
    if "valkey_version" in info:
        return f"valkey {info['valkey_version']}"
    return f"redis {info['redis_version']}"
