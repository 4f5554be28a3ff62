"""Which alert-stream events the notifier acts on.

An alert is identified by its origin and its id (:class:`~schemas.alerts.AlertRef`):
ids are unique per source only, so another unit raising an alert with an id
already used is raising its own alert, delivered to its own recipients, and
never takes over, hides or delays the first (the notifier registers each in
``{liaison}:alert-origins``). A change names its alert by ``subject`` and is
always about an alert of its own source, so only the originator changes it.

A change of an alert not delivered yet is held back: another notifier
process may still be delivering it. It is retried by the claimer and
dead-lettered, with the reason, only if the alert never comes. A change
naming an id that only other units raised, and that its source never
published, is refused at once (dead-lettered, naming the owners): ingest
refuses those already (:mod:`services.core.alert_register`); this catches the
change that raced its owner's alert past that check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from schemas.alerts import AlertRef
from schemas.events import CloudEvent
from schemas.vocabulary import EventType
from services.core.alert_register import not_theirs
from services.core.bus import Entry
from services.core.group_commit import PartlyCommitted

CHANGE_TYPES = frozenset(
    {EventType.ALERT_UPDATED, EventType.ALERT_CANCELLED, EventType.ALERT_CLOSED}
)


class AlertOwners(Protocol):
    """The register of alerts: which units raised an alert of which id."""

    async def claim_alerts(self, alerts: Sequence[AlertRef]) -> None:
        """Register each alert as its origin's (idempotent)."""
        ...

    async def alert_origins(self, alert_ids: Sequence[str]) -> list[tuple[str, ...]]:
        """The units that raised an alert of each id; ``()`` for an id nobody raised."""
        ...

    async def owners_instead(self, changed: Sequence[AlertRef]) -> list[tuple[str, ...]]:
        """For each changed alert, the units that raised its id when its own source neither
        raised nor published it; ``()`` when it may still come."""
        ...


class UnknownAlert(PartlyCommitted):
    """A change arrived for an alert that has not been delivered (yet): retry it later.

    Everything else of its batch was done; only the held-back entries stay pending.
    """


@dataclass(slots=True)
class Admission:
    """A batch sorted: what to act on (in stream order), what to refuse, what to hold back."""

    admitted: list[CloudEvent] = field(default_factory=list)
    refused: list[tuple[Entry, str]] = field(default_factory=list)
    held: list[tuple[Entry, str]] = field(default_factory=list)
    """Each held-back change and why it waits (for :class:`UnknownAlert`)."""


async def admit(batch: Sequence[tuple[Entry, CloudEvent]], owners: AlertOwners) -> Admission:
    """Sort a batch of parsed entries by who may do what to which alert."""
    subjects = list(
        dict.fromkeys(ev.subject for _, ev in batch if ev.type in CHANGE_TYPES and ev.subject)
    )
    # Read before this batch's alerts are registered: a change that comes before its alert
    # in the stream must wait for it, not find it registered and pass on to nobody.
    known = {
        AlertRef(origin, alert_id)
        for alert_id, origins in zip(subjects, await owners.alert_origins(subjects), strict=True)
        for origin in origins
    }
    await owners.claim_alerts(
        [ref for _, ev in batch if ev.type is EventType.ALERT_RAISED and (ref := ev.alert_ref)]
    )
    result = Admission()
    waiting: list[tuple[Entry, CloudEvent, AlertRef]] = []
    for entry, event in batch:
        alert = event.alert_ref
        if event.type is EventType.ALERT_RAISED and alert is not None:
            known.add(alert)
        elif event.type in CHANGE_TYPES and alert not in known:
            assert alert is not None  # a change always has its subject (schema)
            waiting.append((entry, event, alert))
            continue
        result.admitted.append(event)
    if waiting:
        others = await owners.owners_instead([alert for *_, alert in waiting])
        for (entry, event, alert), owned_by in zip(waiting, others, strict=True):
            if owned_by:
                result.refused.append(
                    (
                        entry,
                        f"notifier: {event.type} from {alert.origin}: "
                        + not_theirs(alert, owned_by),
                    )
                )
            else:
                why = f"notifier: {event.type} of {alert}, which was never delivered"
                result.held.append((entry, why))
    return result
