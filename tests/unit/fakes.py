"""In-memory stand-ins for the ports, for unit tests of the handlers."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from schemas.alerts import AlertRef
from schemas.events import CloudEvent
from services.core.bus import Encoded, Entry, seen_field


class FakePublisher:
    """:class:`services.core.bus.Publisher` that remembers what was published."""

    def __init__(self) -> None:
        self.events: list[CloudEvent] = []
        self._seen: set[str] = set()

    async def publish(self, events: Sequence[CloudEvent | Encoded]) -> list[bool]:
        flags = []
        for item in events:
            event = _decoded(item) if isinstance(item, Encoded) else item
            new = seen_field(event) not in self._seen
            if new:
                self._seen.add(seen_field(event))
                self.events.append(event)
            flags.append(new)
        return flags


def _decoded(item: Encoded) -> CloudEvent:
    """The event of an encoded one, checked to be canonical and to match its attributes."""
    event = CloudEvent.from_json(item.payload)
    assert event.to_json() == item.payload, "not the canonical encoding"
    assert (event.type, event.source, event.id) == (item.type, item.source, item.id)
    return event


Key = tuple[str, AlertRef]
"""A delivery: the receiving unit and the alert."""


class FakeInbox:
    """:class:`services.notifier.handlers.Inbox` in dictionaries."""

    def __init__(self, publisher: FakePublisher | None = None) -> None:
        self.deliveries: dict[Key, dict[str, Any]] = {}
        self.changes: dict[Key, dict[str, dict[str, Any]]] = {}
        self.acks: dict[Key, dict[str, Any]] = {}
        self.deadlines: dict[Key, float] = {}
        self.escalations: dict[Key, dict[str, Any]] = {}
        self.notices: dict[str, dict[str, dict[str, Any]]] = {}
        self.origins: dict[str, list[str]] = {}
        self.published: set[AlertRef] = set()
        """Alerts published but not delivered yet (the publishers' index, for owners_instead)."""
        self.publisher = publisher or FakePublisher()
        """Where :meth:`acknowledge` appends its receipt (share it with the deps' publisher)."""

    async def deliver(
        self, deliveries: Sequence[tuple[str, dict[str, Any], float]]
    ) -> list[dict[str, Any]]:
        return [self._deliver(unit, delivery) for unit, delivery, _ in deliveries]

    def _deliver(self, unit: str, delivery: dict[str, Any]) -> dict[str, Any]:
        key = (unit, AlertRef(delivery["alert_source"], delivery["alert_id"]))
        stored = self.deliveries.setdefault(key, copy.deepcopy(delivery))
        if delivery.get("deadline"):
            self.deadlines.setdefault(key, datetime.fromisoformat(delivery["deadline"]).timestamp())
        return copy.deepcopy(stored)

    async def claim_alerts(self, alerts: Sequence[AlertRef]) -> None:
        for alert in alerts:
            origins = self.origins.setdefault(alert.id, [])
            if alert.origin not in origins:
                origins.append(alert.origin)

    async def alert_origins(self, alert_ids: Sequence[str]) -> list[tuple[str, ...]]:
        return [tuple(self.origins.get(alert_id, ())) for alert_id in alert_ids]

    async def owners_instead(self, changed: Sequence[AlertRef]) -> list[tuple[str, ...]]:
        result = []
        for alert in changed:
            origins = tuple(self.origins.get(alert.id, ()))
            mine = alert.origin in origins or alert in self.published
            result.append(() if mine else origins)
        return result

    async def received(self, unit: str, alert_id: str) -> list[AlertRef]:
        return [a for u, a in self.deliveries if u == unit and a.id == alert_id]

    async def recipients(self, alert: AlertRef) -> dict[str, str]:
        return {u: d["view"] for (u, a), d in self.deliveries.items() if a == alert}

    async def record_change(self, unit: str, alert: AlertRef, change: dict[str, Any]) -> None:
        self.changes.setdefault((unit, alert), {}).setdefault(change["id"], change)

    async def acknowledge(
        self, unit: str, alert: AlertRef, ack: dict[str, Any], receipt: Encoded
    ) -> tuple[dict[str, Any], bool] | None:
        if (unit, alert) not in self.deliveries:
            return None
        created = (unit, alert) not in self.acks
        if created:  # with the deadline cleared and the receipt appended, as one step
            self.deadlines.pop((unit, alert), None)
            await self.publisher.publish([receipt])
        return self.acks.setdefault((unit, alert), ack), created

    async def get(self, unit: str, alert: AlertRef) -> dict[str, Any] | None:
        key = (unit, alert)
        if key not in self.deliveries:
            return None
        changes = [c["type"] for c in self.changes.get(key, {}).values()]
        final = [t for t in changes if t in ("alert.closed", "alert.cancelled")]
        ack = self.acks.get(key, {})
        return {
            **self.deliveries[key],
            "acknowledged_at": ack.get("acknowledged_at"),
            "acknowledged_by": ack.get("acknowledged_by"),
            "state": final[-1].removeprefix("alert.") if final else "open",
            "escalated": key in self.escalations,
        }

    async def due(self, now: float, limit: int = 100) -> list[Key]:
        return sorted(k for k, at in self.deadlines.items() if at <= now)[:limit]

    async def settle(self, unit: str, alert: AlertRef) -> None:
        self.deadlines.pop((unit, alert), None)

    async def escalate(self, unit: str, alert: AlertRef, record: dict[str, Any]) -> dict[str, Any]:
        return self.escalations.setdefault((unit, alert), record)

    async def notify(self, coordinator: str, notice: dict[str, Any]) -> None:
        field = f"{notice['unit']}/{notice['alert_source']}/{notice['alert_id']}"
        self.notices.setdefault(coordinator, {}).setdefault(field, notice)


class FakeDeadLetters:
    """:class:`services.core.bus.DeadLetters` as a list."""

    def __init__(self) -> None:
        self.entries: list[tuple[Entry, str]] = []

    async def put(self, entry: Entry, reason: str) -> None:
        self.entries.append((entry, reason))
