"""Per-unit inboxes in Redis (persisted by its AOF): deliveries, changes, acknowledgements.

Every write is idempotent — set-if-absent on a key derived from the alert,
the unit or the event — so a redelivered stream entry changes nothing.

An alert is its origin's: entries, acknowledgements, changes, escalations and
deadlines are keyed by :func:`~services.streams.alert_key` (``<origin>/<id>``),
so two units' alerts with the same id stay apart in one inbox.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT, KeyT

from schemas.alerts import AlertRef
from services import streams
from services.alert_register import AlertRegister
from services.notifier.webhook_outcomes import webhook_outcomes

log = logging.getLogger(__name__)


def _changes_key(unit: str, alert: AlertRef) -> str:
    return f"{streams.inbox_key(unit)}:changes:{streams.alert_key(alert)}"


def _acks_key(unit: str) -> str:
    return f"{streams.inbox_key(unit)}:acks"


def _escalations_key(unit: str) -> str:
    return f"{streams.inbox_key(unit)}:escalations"


def _notices_key(unit: str) -> str:
    return f"{streams.inbox_key(unit)}:notices"


def _member(unit: str, alert: AlertRef) -> str:
    # Neither a unit nor an id holds a newline (the schema refuses control characters).
    return f"{unit}\n{alert.origin}\n{alert.id}"


# KEYS[1] = deadlines, then per delivery: inbox, order, recipients, feed.
# ARGV[1] = feed maxlen, then per delivery: alert key, unit, delivery JSON, score, view,
# deadline, alert origin, alert id.
# Per delivery: 1 if stored now, else the delivery stored before (a redelivery changes nothing).
_DELIVER_LUA = """
local out = {}
for i = 0, (#KEYS - 1) / 4 - 1 do
  local k, a = 2 + i * 4, 2 + i * 8
  local alert, unit = ARGV[a], ARGV[a + 1]
  local origin, id = ARGV[a + 6], ARGV[a + 7]
  local created = redis.call('HSETNX', KEYS[k], alert, ARGV[a + 2])
  redis.call('ZADD', KEYS[k + 1], 'NX', ARGV[a + 3], alert)
  redis.call('HSETNX', KEYS[k + 2], unit, ARGV[a + 4])
  if ARGV[a + 5] ~= '' then
    redis.call('ZADD', KEYS[1], 'NX', ARGV[a + 5], unit .. '\\n' .. origin .. '\\n' .. id)
  end
  if created == 1 then
    redis.call('XADD', KEYS[k + 3], 'MAXLEN', '~', ARGV[1], '*',
               'kind', 'delivered', 'alert_id', id, 'alert_source', origin)
    out[#out + 1] = 1
  else
    out[#out + 1] = redis.call('HGET', KEYS[k], alert)
  end
end
return out
"""


class RedisInbox:
    """The inboxes of every unit."""

    def __init__(self, redis: Redis, register: AlertRegister | None = None) -> None:
        self._redis = redis
        self._deliver = redis.register_script(_DELIVER_LUA)
        self._register = register or AlertRegister(redis)

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
            alert = AlertRef(delivery["alert_source"], delivery["alert_id"])
            keys += [streams.inbox_key(unit), streams.inbox_order_key(unit),
                     streams.recipients_key(alert), streams.feed_key(unit)]  # fmt: skip
            deadline = delivery.get("deadline")
            at = repr(datetime.fromisoformat(deadline).timestamp()) if deadline else ""
            text = _encode(delivery, encoded)
            args += [streams.alert_key(alert), unit, text, repr(score), delivery["view"], at]
            args += [alert.origin, alert.id]
        replies = await self._deliver(keys=keys, args=args)
        return [
            delivery if reply == 1 else json.loads(reply)
            for (_, delivery, _), reply in zip(deliveries, replies, strict=True)
        ]

    async def _feed(self, unit: str, kind: str, alert: AlertRef) -> None:
        # Live screens only: a crash right before this loses a notification, never the inbox entry.
        fields: dict[FieldT, EncodableT] = {
            "kind": kind,
            "alert_id": alert.id,
            "alert_source": alert.origin,
        }
        await self._redis.xadd(
            streams.feed_key(unit), fields, maxlen=streams.FEED_MAXLEN, approximate=True
        )

    async def claim_alerts(self, alerts: Sequence[AlertRef]) -> None:
        """Register each alert as its origin's (:mod:`services.alert_register`)."""
        await self._register.claim(alerts)

    async def alert_origins(self, alert_ids: Sequence[str]) -> list[tuple[str, ...]]:
        """The units that raised an alert of each id; ``()`` for an id nobody raised."""
        return await self._register.origins(alert_ids)

    async def owners_instead(self, changed: Sequence[AlertRef]) -> list[tuple[str, ...]]:
        """The units that raised each changed alert's id when its source did not (nor
        published it); ``()`` when it may still come."""
        return await self._register.owners_instead(changed)

    async def received(self, unit: str, alert_id: str) -> list[AlertRef]:
        """The alerts of this id in the unit's inbox (several when units share an id)."""
        candidates = [AlertRef(o, alert_id) for o in (await self.alert_origins([alert_id]))[0]]
        if not candidates:
            return []
        keys = [streams.alert_key(alert) for alert in candidates]
        present = await self._redis.hmget(streams.inbox_key(unit), keys)
        return [alert for alert, raw in zip(candidates, present, strict=True) if raw is not None]

    async def recipients(self, alert: AlertRef) -> dict[str, str]:
        """Every unit that received the alert, with the view it got."""
        raw = await self._redis.hgetall(streams.recipients_key(alert))
        return {_text(k): _text(v) for k, v in raw.items()}

    async def record_change(self, unit: str, alert: AlertRef, change: dict[str, Any]) -> None:
        """Add an update, cancellation or closure to a delivered alert (once per event)."""
        if await self._redis.hsetnx(_changes_key(unit, alert), change["id"], json.dumps(change)):
            await self._feed(unit, change["type"].removeprefix("alert."), alert)

    async def acknowledge(
        self, unit: str, alert: AlertRef, ack: dict[str, Any]
    ) -> tuple[dict[str, Any], bool] | None:
        """Record the first acknowledgement; None if the unit never got this alert.

        Returns the acknowledgement in force and whether this call made it.
        """
        key = streams.alert_key(alert)
        if not await self._redis.hexists(streams.inbox_key(unit), key):
            return None
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(_acks_key(unit), key, json.dumps(ack))
            pipe.hget(_acks_key(unit), key)
            created, stored = await pipe.execute()
        if created:
            await self._feed(unit, "acknowledged", alert)
        return json.loads(stored), bool(created)

    async def due(self, now: float, limit: int = 100) -> list[tuple[str, AlertRef]]:
        """Deliveries whose acknowledgement deadline has passed: (unit, alert)."""
        members = await self._redis.zrangebyscore(
            streams.DEADLINES, "-inf", now, start=0, num=limit
        )
        due, stale = [], []
        for member in members:
            if not isinstance(member, bytes | str):
                continue  # no scores were asked for: never a pair
            parts = _text(member).split("\n", 2)
            if len(parts) == 3:
                due.append((parts[0], AlertRef(parts[1], parts[2])))
            else:  # "unit\nalert id", written before alerts were told apart by their origin
                stale.append(member)
        if stale:
            log.warning("dropping %d acknowledgement deadlines of the old form", len(stale))
            await self._redis.zrem(streams.DEADLINES, *stale)
        return due

    async def settle(self, unit: str, alert: AlertRef) -> None:
        """The deadline is dealt with: acknowledged, closed, or escalated."""
        await self._redis.zrem(streams.DEADLINES, _member(unit, alert))

    async def escalate(self, unit: str, alert: AlertRef, record: dict[str, Any]) -> dict[str, Any]:
        """Mark a delivery escalated (once); return the escalation in force."""
        key, field = _escalations_key(unit), streams.alert_key(alert)
        if await self._redis.hsetnx(key, field, json.dumps(record)):
            await self._feed(unit, "escalated", alert)
        stored = await self._redis.hget(key, field)
        result: dict[str, Any] = json.loads(stored or "{}")
        return result

    async def notify(self, coordinator: str, notice: dict[str, Any]) -> None:
        """Leave a coordinator a notice that a unit did not acknowledge in time (once)."""
        alert = AlertRef(notice["alert_source"], notice["alert_id"])
        field = f"{notice['unit']}/{streams.alert_key(alert)}"
        if await self._redis.hsetnx(_notices_key(coordinator), field, json.dumps(notice)):
            await self._feed(coordinator, "notice", alert)

    async def notices(self, unit: str) -> list[dict[str, Any]]:
        """Escalation notices for a coordinator, newest first."""
        raw = await self._redis.hvals(_notices_key(unit))
        docs = [json.loads(r) for r in raw]
        return sorted(docs, key=lambda d: d["escalated_at"], reverse=True)

    async def list(self, unit: str, limit: int = 100) -> list[dict[str, Any]]:
        """A unit's deliveries, newest first, with their changes and acknowledgement."""
        newest = await self._redis.zrevrange(streams.inbox_order_key(unit), 0, limit - 1)
        keys = [_text(i) for i in newest if isinstance(i, bytes | str)]
        if not keys:
            return []
        raw = await self._redis.hmget(streams.inbox_key(unit), keys)
        acks = await self._redis.hmget(_acks_key(unit), keys)
        result = []
        for key, delivery, ack in zip(keys, raw, acks, strict=True):
            if delivery is not None:
                doc = json.loads(delivery)
                alert = AlertRef(doc["alert_source"], doc["alert_id"])
                changes = await self._redis.hvals(_changes_key(unit, alert))
                escalation = await self._redis.hget(_escalations_key(unit), key)
                entry = _assemble(doc, ack, changes, escalation)
                entry["webhooks"] = await webhook_outcomes(self._redis, unit, alert)
                result.append(entry)
        return result

    async def get(self, unit: str, alert: AlertRef) -> dict[str, Any] | None:
        """One delivery as :meth:`list` shows it, or None."""
        key = streams.alert_key(alert)
        raw = await self._redis.hget(streams.inbox_key(unit), key)
        if raw is None:
            return None
        ack = await self._redis.hget(_acks_key(unit), key)
        changes = await self._redis.hvals(_changes_key(unit, alert))
        escalation = await self._redis.hget(_escalations_key(unit), key)
        entry = _assemble(json.loads(raw), ack, changes, escalation)
        entry["webhooks"] = await webhook_outcomes(self._redis, unit, alert)
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
        "escalated": escalation is not None,
        "escalation": json.loads(escalation) if escalation else None,
        "state": state,
        "changes": history,
    }
