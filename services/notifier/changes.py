"""Passing on an alert's changes: an update, cancellation or closure to everyone who received
the alert, each in the view both handling codes allow."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas.events import CloudEvent
from schemas.topology import Topology
from schemas.vocabulary import EventType, Reason, Tlp, View
from services.notifier.handlers import NotifierDeps, views_of
from services.notifier.routing import (
    AlertFacts,
    route_change,
)


async def pass_on_change(event: CloudEvent, deps: NotifierDeps) -> int:
    """Give an update, cancellation or closure to everyone who received the alert, each in
    the view the strictest of the alert's and the change's handling codes allow (or a
    notice that it was withheld, see :func:`withheld`). The alert is the one its ``subject``
    names of the change's own source: only the unit that raised an alert changes it."""
    alert = event.alert_ref
    if alert is None:
        raise TypeError(f"{event.type} from {event.source} names no alert of its source")
    recipients = await deps.inbox.recipients(alert)
    received = {}
    for unit, view in recipients.items():
        explicit = False
        if event.tlp is Tlp.RED:  # only then does it matter who was named
            delivery = await deps.inbox.get(unit, alert)
            explicit = delivery is not None and str(Reason.EXPLICIT) in delivery["reasons"]
        received[unit] = (View(view), explicit)
    for unit, change in render_change(event, received, deps.topology).items():
        await deps.inbox.record_change(unit, alert, change)
        if event.type is not EventType.ALERT_UPDATED:  # nothing left to acknowledge
            await deps.inbox.settle(unit, alert)
    return len(recipients)


def render_change(
    event: CloudEvent, received: Mapping[str, tuple[View, bool]], topology: Topology
) -> dict[str, dict[str, Any]]:
    """Each recipient's copy of a change (no I/O): its view, or a :func:`withheld` notice.

    ``received``: each unit that received the alert, its view and whether it was named.
    """
    views = route_change(facts_of_change(event), received, topology)
    rendered = views_of(event, {view for view in views.values() if view is not None})
    notice = withheld(event)
    return {unit: notice if view is None else rendered[view] for unit, view in views.items()}


def facts_of_change(event: CloudEvent) -> AlertFacts:
    """The handling codes of an ``alert.updated``/``cancelled``/``closed`` event."""
    if event.unit is None:
        raise TypeError(f"{event.type} from {event.source} is not an agency's change")
    return AlertFacts(
        origin=event.unit,
        tlp=event.tlp,
        releasableto=event.releasable_countries,
        piireleasableto=event.pii_countries,
    )


def withheld(event: CloudEvent) -> dict[str, Any]:
    """What a recipient gets of a change its handling codes keep from it: that there was one.

    Its type, time and ids, nothing of its data: the unit learns that its copy of the
    alert is out of date, or that the alert is over (so its state, and its deadline,
    follow), and can ask the originator — never what the change says.
    """
    return {
        "specversion": event.specversion,
        "id": event.id,
        "source": event.source,
        "type": event.type.value,
        "time": event.model_dump(mode="json", include={"time"})["time"],
        "subject": event.subject,
        "withheld": True,
        "data": {},
    }
