"""Per-unit inboxes in Redis (persisted by its AOF): deliveries, changes, acknowledgements.

Every write is idempotent — set-if-absent on a key derived from the alert,
the unit or the event — so a redelivered stream entry changes nothing.

Each view of an alert, and each copy of a change, is stored once in the alert's views
hash (:func:`~services.core.streams.views_key`), however many units receive it; a unit's
entry refers to it. An alert leaves every inbox ``INBOX_RETENTION`` after its last
delivery, change or acknowledgement (:mod:`services.notifier.retention`).

An alert is its origin's: entries, acknowledgements, changes, escalations, notices,
deadlines and expiries are keyed by :func:`~services.core.streams.alert_key`
(``<origin>/<id>``), so two units' alerts with the same id stay apart in one inbox.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT, KeyT

from schemas.alerts import AlertRef
from services.core import streams
from services.core.alert_register import AlertRegister
from services.core.bus import DEDUPE_WINDOW, Encoded, seen_field
from services.notifier import inbox_read, inbox_scripts
from services.notifier.model import Delivery, Escalation, Notice, StoredAck

log = logging.getLogger(__name__)

DEFAULT_RETENTION = timedelta(days=90).total_seconds()
"""Seconds an alert stays in the inboxes after its last delivery, change or acknowledgement."""
MAX_NOTICES_SHOWN = 100
"""A coordinator's newest escalation notices shown with its inbox."""


def _member(unit: str, alert: AlertRef) -> str:
    # A unit id holds no newline; the alert key's first "/" ends the origin.
    return f"{unit}\n{streams.alert_key(alert)}"


class RedisInbox:
    """The inboxes of every unit."""

    def __init__(
        self,
        redis: Redis,
        *,
        dedupe_window: int = DEDUPE_WINDOW,
        retention: float = DEFAULT_RETENTION,
        clock: Callable[[], float] = time.time,
        register: AlertRegister | None = None,
    ) -> None:
        self._redis = redis
        self._register = register or AlertRegister(redis, dedupe_window=dedupe_window)
        self._dedupe_window = dedupe_window
        self._retention = retention
        self._clock = clock
        self._deliver = redis.register_script(inbox_scripts.DELIVER)
        self._change = redis.register_script(inbox_scripts.CHANGE)
        self._acknowledge = redis.register_script(inbox_scripts.ACKNOWLEDGE)

    async def deliver(
        self, deliveries: Sequence[tuple[str, dict[str, Any], float]]
    ) -> list[dict[str, Any]]:
        """Store each ``(unit, delivery, score)`` unless the unit already has this alert.

        One script for the whole batch (one round trip, each delivery atomic with its
        feed entry and expiry); each view of an alert is sent and stored once, and the
        entries refer to it. Returns the deliveries as stored, in order (with the event).
        """
        if not deliveries:
            return []
        keys: list[KeyT] = [streams.DEADLINES, streams.INBOX_EXPIRY]
        args: list[EncodableT] = [streams.FEED_MAXLEN]
        fields: dict[tuple[str, int], str] = {}  # (alert, view object) → its field
        expiring: set[str] = set()
        for unit, delivery, score in deliveries:
            alert = AlertRef(delivery["alert_source"], delivery["alert_id"])
            alert_id, event = streams.alert_key(alert), delivery["event"]
            keys += [
                streams.inbox_key(unit),
                streams.inbox_order_key(unit),
                streams.recipients_key(alert),
                streams.feed_key(unit),
                streams.views_key(alert),
            ]
            deadline = delivery.get("deadline")
            at = repr(datetime.fromisoformat(deadline).timestamp()) if deadline else ""
            text = ""
            if (alert_id, id(event)) not in fields:  # identical views share one field
                fields[alert_id, id(event)] = delivery["view"]
                text = json.dumps(event)
            field = fields[alert_id, id(event)]
            entry = {k: v for k, v in delivery.items() if k != "event"} | {"event_ref": field}
            expiry = "" if alert_id in expiring else repr(score + self._retention)
            expiring.add(alert_id)  # once per alert and call
            args += [alert_id, unit, json.dumps(entry), repr(score), delivery["view"], at]
            args += [field, text, expiry, alert.origin, alert.id]
        replies = await self._deliver(keys=keys, args=args)
        return [
            delivery if reply == 1 else {"event": delivery["event"], **json.loads(reply)}
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
        """Register each alert as its origin's (:mod:`services.core.alert_register`)."""
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
        """Add an update, cancellation or closure to a delivered alert (once per event).

        The copy is kept once among the alert's views (units given the same copy share
        it); the unit's entry holds a reference with the change's id, type and time.
        """
        text = json.dumps(change)
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        field = f"change\n{change['id']}\n{digest}"
        ref = {"ref": field, "id": change["id"], "type": change["type"], "time": change["time"]}
        keys: list[KeyT] = [
            streams.views_key(alert),
            streams.inbox_changes_key(unit, alert),
            streams.feed_key(unit),
            streams.INBOX_EXPIRY,
        ]
        args: list[EncodableT] = [
            field,
            text,
            change["id"],
            json.dumps(ref),
            streams.FEED_MAXLEN,
            change["type"].removeprefix("alert."),
            streams.alert_key(alert),
            repr(self._clock() + self._retention),
            alert.origin,
            alert.id,
        ]
        await self._change(keys=keys, args=args)

    async def acknowledge(
        self, unit: str, alert: AlertRef, ack: StoredAck, receipt: Encoded
    ) -> tuple[StoredAck, bool] | None:
        """Record the first acknowledgement; None if the unit never got this alert.

        One script: the acknowledgement, the deadline cleared, the ``alert.acknowledged``
        ``receipt`` appended (marked published, as :class:`~services.core.bus.RedisPublisher`
        would) and the feed entry all happen, or — refused, or the server gone — none.
        Returns the acknowledgement in force and whether this call made it.
        """
        keys: list[KeyT] = [
            streams.inbox_key(unit),
            streams.inbox_acks_key(unit),
            streams.DEADLINES,
            streams.feed_key(unit),
            *streams.seen_keys(self._dedupe_window, self._clock()),
            streams.stream_for(receipt.type),
            streams.INBOX_EXPIRY,
        ]
        args: list[EncodableT] = [
            streams.alert_key(alert),
            json.dumps(ack),
            _member(unit, alert),
            streams.FEED_MAXLEN,
            seen_field(receipt),
            receipt.payload,
            2 * self._dedupe_window,
            repr(self._clock() + self._retention),
            alert.origin,
            alert.id,
        ]
        reply = await self._acknowledge(keys=keys, args=args)
        if reply is None:
            return None
        created, stored = reply
        found: StoredAck = json.loads(stored)
        return found, bool(created)

    async def due(self, now: float, limit: int = 100) -> list[tuple[str, AlertRef]]:
        """Deliveries whose acknowledgement deadline has passed: (unit, alert)."""
        members = await self._redis.zrangebyscore(
            streams.DEADLINES, "-inf", now, start=0, num=limit
        )
        due, stale = [], []
        for member in members:
            if not isinstance(member, bytes | str):
                continue  # no scores were asked for: never a pair
            unit, _, key = _text(member).partition("\n")
            if "/" in key:
                due.append((unit, streams.alert_of_key(key)))
            else:  # "unit\nalert id", written before alerts were told apart by their origin
                stale.append(member)
        if stale:
            log.warning("dropping %d acknowledgement deadlines of the old form", len(stale))
            await self._redis.zrem(streams.DEADLINES, *stale)
        return due

    async def settle(self, unit: str, alert: AlertRef) -> None:
        """The deadline is dealt with: acknowledged, closed, or escalated."""
        await self._redis.zrem(streams.DEADLINES, _member(unit, alert))

    async def escalate(self, unit: str, alert: AlertRef, record: Escalation) -> Escalation:
        """Mark a delivery escalated (once); return the escalation in force."""
        key, field = streams.inbox_escalations_key(unit), streams.alert_key(alert)
        if await self._redis.hsetnx(key, field, json.dumps(record)):
            await self._feed(unit, "escalated", alert)
        stored = await self._redis.hget(key, field)
        result: Escalation = json.loads(stored or "{}")
        return result

    async def notify(self, coordinator: str, notice: Notice) -> None:
        """Leave a coordinator a notice that a unit did not acknowledge in time (once)."""
        alert = AlertRef(notice["alert_source"], notice["alert_id"])
        field = f"{notice['unit']}/{streams.alert_key(alert)}"
        if await self._redis.hsetnx(
            streams.inbox_notices_key(coordinator), field, json.dumps(notice)
        ):
            await self._feed(coordinator, "notice", alert)

    async def notices(self, unit: str, limit: int = MAX_NOTICES_SHOWN) -> list[Notice]:
        """Escalation notices for a coordinator, newest first (at most ``limit``)."""
        raw = await self._redis.hvals(streams.inbox_notices_key(unit))
        docs: list[Notice] = [json.loads(r) for r in raw]
        return sorted(docs, key=lambda d: d["escalated_at"], reverse=True)[:limit]

    async def page(
        self, unit: str, limit: int = 100, after: str | None = None
    ) -> tuple[list[Delivery], str | None]:
        """A page of a unit's deliveries, newest first, and the next page's cursor (or None);
        see :func:`services.notifier.inbox_read.page`."""
        return await inbox_read.page(self._redis, unit, limit, after)

    async def list(self, unit: str, limit: int = 100) -> list[Delivery]:
        """A unit's newest deliveries (at most ``limit``), with their changes and acks."""
        return (await self.page(unit, limit))[0]

    async def get(self, unit: str, alert: AlertRef) -> Delivery | None:
        """One delivery as :meth:`list` shows it, or None."""
        entries = await inbox_read.entries(self._redis, unit, [streams.alert_key(alert)])
        return entries[0] if entries else None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
