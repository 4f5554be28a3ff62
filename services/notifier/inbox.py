"""Per-unit inboxes in Redis (persisted by its AOF): deliveries, changes, acknowledgements.

Every write is idempotent — set-if-absent on a key derived from the alert,
the unit or the event — so a redelivered stream entry changes nothing.
"""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis

from services import streams


def _changes_key(unit: str, alert_id: str) -> str:
    return f"{streams.inbox_key(unit)}:changes:{alert_id}"


def _acks_key(unit: str) -> str:
    return f"{streams.inbox_key(unit)}:acks"


class RedisInbox:
    """The inboxes of every unit."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def deliver(self, unit: str, delivery: dict[str, Any], score: float) -> dict[str, Any]:
        """Store a delivery unless the unit already has this alert; return the stored one."""
        key, alert_id = streams.inbox_key(unit), delivery["alert_id"]
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, alert_id, json.dumps(delivery))
            pipe.zadd(streams.inbox_order_key(unit), {alert_id: score}, nx=True)
            pipe.hsetnx(streams.recipients_key(alert_id), unit, delivery["view"])
            pipe.hget(key, alert_id)
            *_, stored = await pipe.execute()
        result: dict[str, Any] = json.loads(stored)
        return result

    async def recipients(self, alert_id: str) -> dict[str, str]:
        """Every unit that received the alert, with the view it got."""
        raw = await self._redis.hgetall(streams.recipients_key(alert_id))
        return {_text(k): _text(v) for k, v in raw.items()}

    async def record_change(self, unit: str, alert_id: str, change: dict[str, Any]) -> None:
        """Add an update, cancellation or closure to a delivered alert (once per event)."""
        await self._redis.hsetnx(_changes_key(unit, alert_id), change["id"], json.dumps(change))

    async def acknowledge(
        self, unit: str, alert_id: str, ack: dict[str, Any]
    ) -> tuple[dict[str, Any], bool] | None:
        """Record the first acknowledgement; None if the unit never got this alert.

        Returns the acknowledgement in force and whether this call made it.
        """
        if not await self._redis.hexists(streams.inbox_key(unit), alert_id):
            return None
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(_acks_key(unit), alert_id, json.dumps(ack))
            pipe.hget(_acks_key(unit), alert_id)
            created, stored = await pipe.execute()
        return json.loads(stored), bool(created)

    async def list(self, unit: str, limit: int = 100) -> list[dict[str, Any]]:
        """A unit's deliveries, newest first, with their changes and acknowledgement."""
        newest = await self._redis.zrevrange(streams.inbox_order_key(unit), 0, limit - 1)
        ids = [_text(i) for i in newest if isinstance(i, bytes | str)]
        if not ids:
            return []
        raw = await self._redis.hmget(streams.inbox_key(unit), ids)
        acks = await self._redis.hmget(_acks_key(unit), ids)
        result = []
        for alert_id, delivery, ack in zip(ids, raw, acks, strict=True):
            changes = await self._redis.hvals(_changes_key(unit, alert_id))
            if delivery is not None:
                result.append(_assemble(json.loads(delivery), ack, changes))
        return result

    async def get(self, unit: str, alert_id: str) -> dict[str, Any] | None:
        """One delivery as :meth:`list` shows it, or None."""
        raw = await self._redis.hget(streams.inbox_key(unit), alert_id)
        if raw is None:
            return None
        ack = await self._redis.hget(_acks_key(unit), alert_id)
        changes = await self._redis.hvals(_changes_key(unit, alert_id))
        return _assemble(json.loads(raw), ack, changes)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


_FINAL_STATES = {"alert.cancelled": "cancelled", "alert.closed": "closed"}


def _assemble(
    delivery: dict[str, Any], ack: bytes | str | None, changes: list[bytes | str]
) -> dict[str, Any]:
    ack_doc = json.loads(ack) if ack else {}
    history = sorted((json.loads(c) for c in changes), key=lambda c: (c["time"], c["id"]))
    state = "open"
    for change in history:
        state = _FINAL_STATES.get(change["type"], "updated" if state == "open" else state)
    return {
        **delivery,
        "acknowledged_at": ack_doc.get("acknowledged_at"),
        "acknowledged_by": ack_doc.get("acknowledged_by"),
        "escalated": False,
        "state": state,
        "changes": history,
    }
