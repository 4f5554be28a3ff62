"""Which alert-stream events the notifier acts on.

An alert id names one alert. The first ``alert.raised`` to use an id owns
it (its source is kept in ``{liaison}:alert-origins``), so another unit
reusing the id can neither reach the first alert's recipients nor take over
their inbox entries, and only the alert's originator may update, cancel or
close it. Such events go to the dead-letter stream with the reason.

A change for an alert not delivered yet is held back instead: another
notifier process may still be delivering it. It is retried by the claimer
and dead-lettered, with the reason, only if the alert never comes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from schemas.events import CloudEvent
from schemas.vocabulary import EventType
from services.bus import Entry
from services.group_commit import PartlyCommitted

CHANGE_TYPES = frozenset(
    {EventType.ALERT_UPDATED, EventType.ALERT_CANCELLED, EventType.ALERT_CLOSED}
)


class AlertOwners(Protocol):
    """The register of alert ids and the source that raised each."""

    async def claim_alerts(self, alerts: Sequence[tuple[str, str]]) -> list[str]:
        """Register each ``(alert id, source)`` whose id is new; the owning source of each id."""
        ...

    async def alert_owners(self, alert_ids: Sequence[str]) -> list[str | None]:
        """The owning source of each alert id; None for an id never raised."""
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
    raised = [ev for _, ev in batch if ev.type is EventType.ALERT_RAISED]
    owner: dict[str, str | None] = dict(
        zip(
            (ev.id for ev in raised),
            await owners.claim_alerts([(ev.id, ev.source) for ev in raised]),
            strict=True,
        )
    )
    unseen = list(dict.fromkeys(
        ev.subject for _, ev in batch if ev.type in CHANGE_TYPES and ev.subject and ev.subject not in owner
    ))  # fmt: skip
    owner.update(zip(unseen, await owners.alert_owners(unseen), strict=True))
    result = Admission()
    for entry, event in batch:
        reason = _refusal(event, owner)
        if reason is None:
            result.admitted.append(event)
        elif event.type in CHANGE_TYPES and owner.get(event.subject or "") is None:
            result.held.append((entry, reason))
        else:
            result.refused.append((entry, reason))
    return result


def _refusal(event: CloudEvent, owner: dict[str, str | None]) -> str | None:
    if event.type is EventType.ALERT_RAISED:
        first = owner[event.id]
        if first == event.source:
            return None
        return (f"notifier: alert id {event.id!r} is already used by an alert from {first}; "
                "alert ids must be unique (use a UUID)")  # fmt: skip
    if event.type not in CHANGE_TYPES:
        return None
    alert_id = event.subject or ""
    first = owner.get(alert_id)
    if first is None:
        return f"notifier: {event.type} of alert {alert_id!r}, which was never delivered"
    if first != event.source:
        return f"notifier: only {first}, which raised alert {alert_id!r}, may change it; not {event.source}"
    return None
