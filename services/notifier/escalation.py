"""Silence escalates: deliveries not acknowledged by their deadline.

Deadlines live in Redis (a sorted set, persisted by the AOF), not in timers,
so they survive restarts. Escalating is idempotent — the inbox marks a
delivery escalated only once, the coordinator's notice is set-if-absent and
``alert.escalated`` has a deterministic id — so two notifier processes that
see the same due deadline produce one escalation between them.
"""

from __future__ import annotations

import logging
from datetime import datetime

from schemas.alerts import AlertRef
from schemas.events import CloudEvent
from schemas.receipts import AlertEscalated
from schemas.vocabulary import EventType, Severity
from services.notifier.handlers import NOTIFIER_SOURCE, NotifierDeps
from services.notifier.model import Delivery, Escalation, Notice

log = logging.getLogger(__name__)


async def escalate_due(deps: NotifierDeps, limit: int = 100) -> int:
    """Escalate every delivery past its deadline; returns how many were escalated now."""
    now = deps.clock()
    escalated = 0
    for unit, alert in await deps.inbox.due(now.timestamp(), limit):
        delivery = await deps.inbox.get(unit, alert)
        if delivery is not None and _still_waiting(delivery):
            # Also when already marked escalated: the deadline is still due, so a process died
            # between marking and notifying; finishing is idempotent (notices, event id).
            await _escalate(unit, alert, delivery, now, deps)
            escalated += not delivery.get("escalated")
        await deps.inbox.settle(unit, alert)
    return escalated


def _still_waiting(delivery: Delivery) -> bool:
    return delivery.get("acknowledged_at") is None and delivery.get("state") not in (
        "closed",
        "cancelled",
    )


async def _escalate(
    unit: str, alert: AlertRef, delivery: Delivery, now: datetime, deps: NotifierDeps
) -> None:
    country = deps.topology.country_of(unit)
    coordinators = [c for c in deps.topology.coordinators(country) if c != unit]
    deadline = datetime.fromisoformat(str(delivery["deadline"]))
    record: Escalation = {
        "escalated_at": now.isoformat(),
        "deadline": deadline.isoformat(),
        "coordinators": coordinators,
        "reminder": f"Alert {alert.id} of {alert.origin} awaits acknowledgement by {unit} "
        f"since {deadline.isoformat()}",
    }
    stored = await deps.inbox.escalate(unit, alert, record)
    at = datetime.fromisoformat(stored["escalated_at"])
    notice: Notice = {"alert_id": alert.id, "alert_source": alert.origin, "unit": unit, **stored}
    for coordinator in coordinators:
        await deps.inbox.notify(coordinator, notice)
    event = CloudEvent(
        specversion="1.0",
        id=f"escalated/{alert.origin}/{alert.id}/{unit}",
        source=NOTIFIER_SOURCE,
        type=EventType.ALERT_ESCALATED,
        time=at,
        subject=alert.id,
        data=AlertEscalated(
            alert_id=alert.id,
            alert_source=alert.origin,
            unit=unit,
            severity=Severity(str(delivery.get("severity", "routine"))),
            deadline=deadline,
            coordinator=coordinators[0] if coordinators else None,
            escalated_at=at,
        ),
    )
    await deps.publisher.publish([event])
    log.warning("escalated %s: %s did not acknowledge by %s", alert, unit, deadline)
