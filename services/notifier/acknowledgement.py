"""Acknowledging a delivery: stored with its ``alert.acknowledged`` receipt in one step."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import TypeAdapter, ValidationError

from schemas.alerts import AlertRef, Ref
from schemas.events import CloudEvent
from schemas.receipts import AlertAcknowledged
from schemas.vocabulary import EventType
from services.core.bus import Encoded
from services.notifier.handlers import NOTIFIER_SOURCE, NotifierDeps
from services.notifier.model import StoredAck


@dataclass(frozen=True, slots=True)
class Acknowledger:
    """Who acknowledges: the authenticated principal, the person it was issued to, and what
    the officer typed (a name and a note, neither verified)."""

    principal: str
    """The principal's configured name, or ``cli:<OS user>`` for the command line."""
    person: str | None = None
    officer: str | None = None
    note: str | None = None


async def acknowledge(
    unit: str, alert: AlertRef, by: Acknowledger, deps: NotifierDeps
) -> StoredAck | None:
    """Record an acknowledgement (idempotent) with its ``alert.acknowledged``, in one step.

    The receipt is validated before anything is written (a blank name is a
    ``ValidationError`` and nothing happens); the inbox then stores the
    acknowledgement, clears the deadline and appends the receipt atomically.
    Returns the acknowledgement in force (the first one), or None if the unit
    never received the alert.
    """
    if not _is_reference(alert.id):
        return None  # ingest accepts no such id: no unit can have received it
    now = deps.clock()
    data = AlertAcknowledged(
        alert_id=alert.id,
        alert_source=alert.origin,
        unit=unit,
        principal=by.principal,
        person=by.person,
        officer=by.officer,
        note=by.note,
        acknowledged_at=now,
    )
    ack: StoredAck = {
        "acknowledged_at": now.isoformat(),
        "acknowledged_by": data.principal,
        "person": data.person,
        "officer": data.officer,
        "note": data.note,
    }
    outcome = await deps.inbox.acknowledge(unit, alert, ack, Encoded.of(_acknowledged(data)))
    if outcome is None:
        return None
    stored, created = outcome
    if not created:
        # Its receipt was written with it — unless an earlier version stored it and then
        # failed: publish it again (a deterministic id makes that a no-op when it exists).
        await deps.publisher.publish([_acknowledged(_stored_ack(unit, alert, stored))])
    return stored


_REFERENCE: TypeAdapter[str] = TypeAdapter(Ref)


def _is_reference(value: str) -> bool:
    try:
        _REFERENCE.validate_python(value)
    except ValidationError:
        return False
    return True


def _acknowledged(data: AlertAcknowledged) -> CloudEvent:
    # The id names the alert's origin: two units' alerts of one id are two acknowledgements.
    return CloudEvent(
        specversion="1.0",
        id=f"acknowledged/{data.alert_source}/{data.alert_id}/{data.unit}",
        source=NOTIFIER_SOURCE,
        type=EventType.ALERT_ACKNOWLEDGED,
        time=data.acknowledged_at,
        subject=data.alert_id,
        data=data,
    )


def _stored_ack(unit: str, alert: AlertRef, stored: StoredAck) -> AlertAcknowledged:
    """The receipt's data of an acknowledgement as stored, blank texts (older versions kept
    them) left out; before principals were recorded, ``acknowledged_by`` was the typed name."""

    def text(key: str) -> str | None:
        value = stored.get(key)
        return value.strip() or None if isinstance(value, str) else None

    if "officer" in stored:  # acknowledged_by is the principal
        principal, officer = text("acknowledged_by"), text("officer")
    else:  # stored before principals were recorded: acknowledged_by was the typed name
        principal, officer = None, text("acknowledged_by")
    return AlertAcknowledged(
        alert_id=alert.id,
        alert_source=alert.origin,
        unit=unit,
        principal=principal,
        person=text("person"),
        officer=officer,
        note=text("note"),
        acknowledged_at=datetime.fromisoformat(stored["acknowledged_at"]),
    )
