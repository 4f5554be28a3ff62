"""In-memory stand-ins for the ports, for unit tests of the handlers."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from schemas.events import CloudEvent
from services.bus import Encoded, Entry, seen_field


class FakePublisher:
    """:class:`services.bus.Publisher` that remembers what was published."""

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


class FakeInbox:
    """:class:`services.notifier.handlers.Inbox` in dictionaries."""

    def __init__(self, publisher: FakePublisher | None = None) -> None:
        self.deliveries: dict[tuple[str, str], dict[str, Any]] = {}
        self.changes: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        self.acks: dict[tuple[str, str], dict[str, Any]] = {}
        self.deadlines: dict[tuple[str, str], float] = {}
        self.escalations: dict[tuple[str, str], dict[str, Any]] = {}
        self.notices: dict[str, dict[str, dict[str, Any]]] = {}
        self.owners: dict[str, str] = {}
        self.publisher = publisher or FakePublisher()
        """Where :meth:`acknowledge` appends its receipt (share it with the deps' publisher)."""

    async def deliver(
        self, deliveries: Sequence[tuple[str, dict[str, Any], float]]
    ) -> list[dict[str, Any]]:
        return [self._deliver(unit, delivery) for unit, delivery, _ in deliveries]

    def _deliver(self, unit: str, delivery: dict[str, Any]) -> dict[str, Any]:
        key = (unit, delivery["alert_id"])
        stored = self.deliveries.setdefault(key, copy.deepcopy(delivery))
        if delivery.get("deadline"):
            self.deadlines.setdefault(key, datetime.fromisoformat(delivery["deadline"]).timestamp())
        return copy.deepcopy(stored)

    async def claim_alerts(self, alerts: Sequence[tuple[str, str]]) -> list[str]:
        return [self.owners.setdefault(alert_id, source) for alert_id, source in alerts]

    async def alert_owners(self, alert_ids: Sequence[str]) -> list[str | None]:
        return [self.owners.get(alert_id) for alert_id in alert_ids]

    async def recipients(self, alert_id: str) -> dict[str, str]:
        return {u: d["view"] for (u, a), d in self.deliveries.items() if a == alert_id}

    async def record_change(self, unit: str, alert_id: str, change: dict[str, Any]) -> None:
        self.changes.setdefault((unit, alert_id), {}).setdefault(change["id"], change)

    async def acknowledge(
        self, unit: str, alert_id: str, ack: dict[str, Any], receipt: Encoded
    ) -> tuple[dict[str, Any], bool] | None:
        if (unit, alert_id) not in self.deliveries:
            return None
        created = (unit, alert_id) not in self.acks
        if created:  # with the deadline cleared and the receipt appended, as one step
            self.deadlines.pop((unit, alert_id), None)
            await self.publisher.publish([receipt])
        return self.acks.setdefault((unit, alert_id), ack), created

    async def get(self, unit: str, alert_id: str) -> dict[str, Any] | None:
        key = (unit, alert_id)
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

    async def due(self, now: float, limit: int = 100) -> list[tuple[str, str]]:
        return sorted(k for k, at in self.deadlines.items() if at <= now)[:limit]

    async def settle(self, unit: str, alert_id: str) -> None:
        self.deadlines.pop((unit, alert_id), None)

    async def escalate(self, unit: str, alert_id: str, record: dict[str, Any]) -> dict[str, Any]:
        return self.escalations.setdefault((unit, alert_id), record)

    async def notify(self, coordinator: str, notice: dict[str, Any]) -> None:
        field = f"{notice['unit']}/{notice['alert_id']}"
        self.notices.setdefault(coordinator, {}).setdefault(field, notice)


class FakeDeadLetters:
    """:class:`services.bus.DeadLetters` as a list."""

    def __init__(self) -> None:
        self.entries: list[tuple[Entry, str]] = []

    async def put(self, entry: Entry, reason: str) -> None:
        self.entries.append((entry, reason))
