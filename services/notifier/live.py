"""Server-Sent Events for an officer's screen: a unit's inbox as it changes.

Each event carries the stream entry id as its SSE ``id``, so a browser that
reconnects with ``Last-Event-ID`` resumes exactly where it stopped (within
the feed's retained window). The payload is the delivery as the inbox shows
it now — the unit's own view, never more.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from redis.asyncio import Redis

from schemas.alerts import AlertRef
from services import streams
from services.notifier.inbox import RedisInbox

HEARTBEAT_MS = 15_000


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def start_id(redis: Redis, unit: str, last_event_id: str | None) -> str:
    """Resume after ``Last-Event-ID``, or start from what is newest now."""
    if last_event_id:
        return last_event_id
    newest: Any = await redis.xrevrange(streams.feed_key(unit), count=1)
    return _text(newest[0][0]) if newest else "0-0"


async def events(
    redis: Redis,
    inbox: RedisInbox,
    unit: str,
    after: str,
    disconnected: Callable[[], Awaitable[bool]],
) -> AsyncIterator[str]:
    """SSE frames until the client goes away; a comment line keeps idle connections open."""
    yield "retry: 3000\n\n"
    while not await disconnected():
        reply = await redis.xread({streams.feed_key(unit): after}, count=100, block=HEARTBEAT_MS)
        entries = _entries(reply)
        if not entries:
            yield ": keep-alive\n\n"
            continue
        for entry_id, fields in entries:
            after = entry_id
            yield await _frame(inbox, unit, after, fields)


def _entries(reply: Any) -> list[tuple[str, dict[Any, Any]]]:
    # RESP2 (the clients' protocol here): [[stream, [(id, fields), ...]]]
    return [(_text(entry_id), fields) for entry_id, fields in reply[0][1]] if reply else []


async def _frame(inbox: RedisInbox, unit: str, entry_id: str, fields: dict[Any, Any]) -> str:
    kind = _text(fields[b"kind"])
    alert = AlertRef(_text(fields.get(b"alert_source", b"")), _text(fields[b"alert_id"]))
    if kind == "notice":
        doc: dict[str, Any] | None = {"alert_id": alert.id, "notices": await inbox.notices(unit)}
    else:
        doc = await inbox.get(unit, alert)
    payload = json.dumps(
        {"kind": kind, "alert_id": alert.id, "alert_source": alert.origin, "delivery": doc}
    )
    return f"id: {entry_id}\nevent: {kind}\ndata: {payload}\n\n"
