"""Per-unit inboxes in Redis (persisted by its AOF): deliveries, changes, acknowledgements.

Every write is idempotent — set-if-absent on a key derived from the alert,
the unit or the event — so a redelivered stream entry changes nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT, KeyT

from services import streams
from services.bus import DEDUPE_WINDOW, Encoded, seen_field
from services.notifier.webhook_outcomes import webhook_outcomes


def _changes_key(unit: str, alert_id: str) -> str:
    return f"{streams.inbox_key(unit)}:changes:{alert_id}"


def _acks_key(unit: str) -> str:
    return f"{streams.inbox_key(unit)}:acks"


def _escalations_key(unit: str) -> str:
    return f"{streams.inbox_key(unit)}:escalations"


def _notices_key(unit: str) -> str:
    return f"{streams.inbox_key(unit)}:notices"


def _member(unit: str, alert_id: str) -> str:
    return f"{unit}\n{alert_id}"


# KEYS[1] = deadlines, then per delivery: inbox, order, recipients, feed.
# ARGV[1] = feed maxlen, then per delivery: alert id, unit, delivery JSON, score, view, deadline.
# Per delivery: 1 if stored now, else the delivery stored before (a redelivery changes nothing).
_DELIVER_LUA = """
local out = {}
for i = 0, (#KEYS - 1) / 4 - 1 do
  local k, a = 2 + i * 4, 2 + i * 6
  local alert, unit = ARGV[a], ARGV[a + 1]
  local created = redis.call('HSETNX', KEYS[k], alert, ARGV[a + 2])
  redis.call('ZADD', KEYS[k + 1], 'NX', ARGV[a + 3], alert)
  redis.call('HSETNX', KEYS[k + 2], unit, ARGV[a + 4])
  if ARGV[a + 5] ~= '' then
    redis.call('ZADD', KEYS[1], 'NX', ARGV[a + 5], unit .. '\\n' .. alert)
  end
  if created == 1 then
    redis.call('XADD', KEYS[k + 3], 'MAXLEN', '~', ARGV[1], '*',
               'kind', 'delivered', 'alert_id', alert)
    out[#out + 1] = 1
  else
    out[#out + 1] = redis.call('HGET', KEYS[k], alert)
  end
end
return out
"""

# KEYS = inbox, acks, deadlines, feed, seen (this window), seen (previous), receipts stream.
# ARGV = alert id, ack JSON, deadline member, feed maxlen, seen field, receipt, seen TTL.
# nil if the unit never got the alert; else {1 if acknowledged now, the ack in force}.
_ACK_LUA = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  return false
end
local created = redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[3])
if created == 1 then
  if not (redis.call('HGET', KEYS[5], ARGV[5]) or redis.call('HGET', KEYS[6], ARGV[5])) then
    local entry = redis.call('XADD', KEYS[7], '*', '__data__', ARGV[6])
    redis.call('HSET', KEYS[5], ARGV[5], entry)
    redis.call('EXPIRE', KEYS[5], ARGV[7])
  end
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[4], '*',
             'kind', 'acknowledged', 'alert_id', ARGV[1])
end
return {created, redis.call('HGET', KEYS[2], ARGV[1])}
"""


class RedisInbox:
    """The inboxes of every unit."""

    def __init__(self, redis: Redis, *, dedupe_window: int = DEDUPE_WINDOW) -> None:
        self._redis = redis
        self._dedupe_window = dedupe_window
        self._deliver = redis.register_script(_DELIVER_LUA)
        self._acknowledge = redis.register_script(_ACK_LUA)

    async def deliver(
        self, deliveries: Sequence[tuple[str, dict[str, Any], float]]
    ) -> list[dict[str, Any]]:
        """Store each ``(unit, delivery, score)`` unless the unit already has this alert.

        One script for the whole batch (one round trip, each delivery atomic
        with its feed entry); returns the deliveries as stored, in order.
        """
        if not deliveries:
            return []
        keys: list[KeyT] = [streams.DEADLINES]
        args: list[EncodableT] = [streams.FEED_MAXLEN]
        encoded: dict[int, str] = {}  # an alert's recipients share its views: encode each once
        for unit, delivery, score in deliveries:
            alert_id = delivery["alert_id"]
            keys += [streams.inbox_key(unit), streams.inbox_order_key(unit),
                     streams.recipients_key(alert_id), streams.feed_key(unit)]  # fmt: skip
            deadline = delivery.get("deadline")
            at = repr(datetime.fromisoformat(deadline).timestamp()) if deadline else ""
            text = _encode(delivery, encoded)
            args += [alert_id, unit, text, repr(score), delivery["view"], at]
        replies = await self._deliver(keys=keys, args=args)
        return [
            delivery if reply == 1 else json.loads(reply)
            for (_, delivery, _), reply in zip(deliveries, replies, strict=True)
        ]

    async def _feed(self, unit: str, kind: str, alert_id: str) -> None:
        # Live screens only: a crash right before this loses a notification, never the inbox entry.
        fields: dict[FieldT, EncodableT] = {"kind": kind, "alert_id": alert_id}
        await self._redis.xadd(
            streams.feed_key(unit), fields, maxlen=streams.FEED_MAXLEN, approximate=True
        )

    async def claim_alerts(self, alerts: Sequence[tuple[str, str]]) -> list[str]:
        """Register each ``(alert id, source)`` whose id is new; the owning source of each id."""
        if not alerts:
            return []
        pipe = self._redis.pipeline(transaction=True)
        for alert_id, source in alerts:
            pipe.hsetnx(streams.ALERT_ORIGINS, alert_id, source)
        pipe.hmget(streams.ALERT_ORIGINS, [alert_id for alert_id, _ in alerts])
        *_, owners = await pipe.execute()
        return [_text(owner) for owner in owners]

    async def alert_owners(self, alert_ids: Sequence[str]) -> list[str | None]:
        """The owning source of each alert id; None for an id never raised."""
        if not alert_ids:
            return []
        owners = await self._redis.hmget(streams.ALERT_ORIGINS, list(alert_ids))
        return [None if owner is None else _text(owner) for owner in owners]

    async def recipients(self, alert_id: str) -> dict[str, str]:
        """Every unit that received the alert, with the view it got."""
        raw = await self._redis.hgetall(streams.recipients_key(alert_id))
        return {_text(k): _text(v) for k, v in raw.items()}

    async def record_change(self, unit: str, alert_id: str, change: dict[str, Any]) -> None:
        """Add an update, cancellation or closure to a delivered alert (once per event)."""
        if await self._redis.hsetnx(_changes_key(unit, alert_id), change["id"], json.dumps(change)):
            await self._feed(unit, change["type"].removeprefix("alert."), alert_id)

    async def acknowledge(
        self, unit: str, alert_id: str, ack: dict[str, Any], receipt: Encoded
    ) -> tuple[dict[str, Any], bool] | None:
        """Record the first acknowledgement; None if the unit never got this alert.

        One script: the acknowledgement, the deadline cleared, the ``alert.acknowledged``
        ``receipt`` appended (marked published, as :class:`~services.bus.RedisPublisher`
        would) and the feed entry all happen, or — refused, or the server gone — none.
        Returns the acknowledgement in force and whether this call made it.
        """
        keys: list[KeyT] = [
            streams.inbox_key(unit),
            _acks_key(unit),
            streams.DEADLINES,
            streams.feed_key(unit),
            *streams.seen_keys(self._dedupe_window, time.time()),
            streams.stream_for(receipt.type),
        ]
        args: list[EncodableT] = [
            alert_id,
            json.dumps(ack),
            _member(unit, alert_id),
            streams.FEED_MAXLEN,
            seen_field(receipt),
            receipt.payload,
            2 * self._dedupe_window,
        ]
        reply = await self._acknowledge(keys=keys, args=args)
        if reply is None:
            return None
        created, stored = reply
        return json.loads(stored), bool(created)

    async def due(self, now: float, limit: int = 100) -> list[tuple[str, str]]:
        """Deliveries whose acknowledgement deadline has passed: (unit, alert id)."""
        members = await self._redis.zrangebyscore(
            streams.DEADLINES, "-inf", now, start=0, num=limit
        )
        pairs = [_text(m).split("\n", 1) for m in members if isinstance(m, bytes | str)]
        return [(unit, alert_id) for unit, alert_id in pairs]

    async def settle(self, unit: str, alert_id: str) -> None:
        """The deadline is dealt with: acknowledged, closed, or escalated."""
        await self._redis.zrem(streams.DEADLINES, _member(unit, alert_id))

    async def escalate(self, unit: str, alert_id: str, record: dict[str, Any]) -> dict[str, Any]:
        """Mark a delivery escalated (once); return the escalation in force."""
        key = _escalations_key(unit)
        if await self._redis.hsetnx(key, alert_id, json.dumps(record)):
            await self._feed(unit, "escalated", alert_id)
        stored = await self._redis.hget(key, alert_id)
        result: dict[str, Any] = json.loads(stored or "{}")
        return result

    async def notify(self, coordinator: str, notice: dict[str, Any]) -> None:
        """Leave a coordinator a notice that a unit did not acknowledge in time (once)."""
        field = f"{notice['unit']}/{notice['alert_id']}"
        if await self._redis.hsetnx(_notices_key(coordinator), field, json.dumps(notice)):
            await self._feed(coordinator, "notice", notice["alert_id"])

    async def notices(self, unit: str) -> list[dict[str, Any]]:
        """Escalation notices for a coordinator, newest first."""
        raw = await self._redis.hvals(_notices_key(unit))
        docs = [json.loads(r) for r in raw]
        return sorted(docs, key=lambda d: d["escalated_at"], reverse=True)

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
            escalation = await self._redis.hget(_escalations_key(unit), alert_id)
            if delivery is not None:
                entry = _assemble(json.loads(delivery), ack, changes, escalation)
                entry["webhooks"] = await webhook_outcomes(self._redis, unit, alert_id)
                result.append(entry)
        return result

    async def get(self, unit: str, alert_id: str) -> dict[str, Any] | None:
        """One delivery as :meth:`list` shows it, or None."""
        raw = await self._redis.hget(streams.inbox_key(unit), alert_id)
        if raw is None:
            return None
        ack = await self._redis.hget(_acks_key(unit), alert_id)
        changes = await self._redis.hvals(_changes_key(unit, alert_id))
        escalation = await self._redis.hget(_escalations_key(unit), alert_id)
        entry = _assemble(json.loads(raw), ack, changes, escalation)
        entry["webhooks"] = await webhook_outcomes(self._redis, unit, alert_id)
        return entry


def _encode(delivery: dict[str, Any], encoded: dict[int, str]) -> str:
    """``json.dumps(delivery)``, its ``event`` (shared by id) encoded only once."""
    event = delivery["event"]
    if id(event) not in encoded:
        encoded[id(event)] = json.dumps(event)
    rest = json.dumps({k: v for k, v in delivery.items() if k != "event"})
    return f'{rest[:-1]}, "event": {encoded[id(event)]}}}'


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


_FINAL_STATES = {"alert.cancelled": "cancelled", "alert.closed": "closed"}


def _assemble(
    delivery: dict[str, Any],
    ack: bytes | str | None,
    changes: list[bytes | str],
    escalation: bytes | str | None,
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
        "acknowledgement": _acknowledgement(ack_doc),
        "escalated": escalation is not None,
        "escalation": json.loads(escalation) if escalation else None,
        "state": state,
        "changes": history,
    }


def _acknowledgement(ack: dict[str, Any]) -> dict[str, Any] | None:
    """Who acknowledged, as stored: the principal, its person, the typed name and note.

    Acknowledgements stored before principals were recorded kept the typed name (or the
    principal's name when none was typed) in ``acknowledged_by``: shown as ``officer``.
    """
    if not ack:
        return None
    if "officer" not in ack:  # stored before principals were recorded
        ack = {**ack, "acknowledged_by": None, "officer": ack.get("acknowledged_by")}
    return {
        "principal": ack.get("acknowledged_by"),
        "person": ack.get("person"),
        "officer": ack.get("officer"),
        "note": ack.get("note"),
        "acknowledged_at": ack.get("acknowledged_at"),
    }
