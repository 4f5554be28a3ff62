"""The liaison workflow as plain functions: the notifier's ports, and fanning an alert out.

Its changes are passed on in :mod:`services.notifier.changes`, acknowledgements taken in
:mod:`services.notifier.acknowledgement`."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from schemas.alerts import AlertRaised, AlertRef
from schemas.events import CloudEvent, canonical_json
from schemas.receipts import AlertDelivered
from schemas.topology import Topology
from schemas.vocabulary import EventType, View
from services.core.bus import Encoded, Publisher
from services.core.config import AckDeadlines
from services.core.metrics import DELIVERIES, NO_METRICS, Metrics
from services.notifier.admission import AlertOwners
from services.notifier.model import Delivery, Escalation, Notice, StoredAck
from services.notifier.operation_gate import Operations
from services.notifier.routing import (
    AlertFacts,
    Recipient,
    non_nominal_event,
    route_alert,
)

log = logging.getLogger(__name__)

NOTIFIER_SOURCE = "/liaison/notifier"
DEFAULT_DEADLINES = AckDeadlines()


class Inbox(AlertOwners, Protocol):
    """Per-unit inboxes and the alert register (:class:`~services.notifier.inbox.RedisInbox`)."""

    async def deliver(
        self, deliveries: Sequence[tuple[str, dict[str, Any], float]]
    ) -> list[dict[str, Any]]: ...
    async def recipients(self, alert: AlertRef) -> dict[str, str]: ...
    async def record_change(self, unit: str, alert: AlertRef, change: dict[str, Any]) -> None: ...
    async def acknowledge(
        self, unit: str, alert: AlertRef, ack: StoredAck, receipt: Encoded
    ) -> tuple[StoredAck, bool] | None: ...
    async def received(self, unit: str, alert_id: str) -> list[AlertRef]: ...
    async def get(self, unit: str, alert: AlertRef) -> Delivery | None: ...
    async def due(self, now: float, limit: int = 100) -> list[tuple[str, AlertRef]]: ...
    async def settle(self, unit: str, alert: AlertRef) -> None: ...
    async def escalate(self, unit: str, alert: AlertRef, record: Escalation) -> Escalation: ...
    async def notify(self, coordinator: str, notice: Notice) -> None: ...


class WebhookEnqueuer(Protocol):
    """Queues a delivery for the unit's webhook endpoints (:class:`~services.notifier.webhooks.WebhookQueue`)."""

    async def enqueue(self, unit: str, alert: AlertRef, event: dict[str, Any]) -> int: ...
    async def enqueue_many(
        self, deliveries: Sequence[tuple[str, AlertRef, dict[str, Any]]]
    ) -> int: ...


@dataclass(frozen=True, slots=True)
class NotifierDeps:
    """What the notifier's handlers need, wired once at start-up."""

    topology: Topology
    inbox: Inbox
    publisher: Publisher
    deadlines: AckDeadlines = DEFAULT_DEADLINES
    webhooks: WebhookEnqueuer | None = None
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    metrics: Metrics = NO_METRICS
    operations: Operations | None = None
    """The register of operations; None: an alert of an operation waits (and is
    dead-lettered at the retry cap), as for an operation nobody opened."""


def view_of(event: CloudEvent, view: View) -> dict[str, Any]:
    """The event as a recipient with ``view`` may see it."""
    return views_of(event, {view})[view]


def views_of(event: CloudEvent, views: Iterable[View]) -> dict[View, dict[str, Any]]:
    """The event as each of ``views`` may see it, serialised once."""
    wire = event.model_dump(mode="json", by_alias=True, exclude_none=True)
    result: dict[View, dict[str, Any]] = {}
    for view in views:
        if view is View.NON_NOMINAL and "persons" in wire["data"]:
            result[view] = non_nominal_event(wire)
        else:
            result[view] = wire
    return result


@functools.lru_cache(maxsize=4096)
def _route(facts: AlertFacts, topology: Topology) -> tuple[Recipient, ...]:
    # Alerts along the same route from the same unit share their recipients; routing is pure.
    return route_alert(facts, topology)


def facts_of(event: CloudEvent, members: frozenset[str] | None = None) -> AlertFacts:
    """What routing needs to know of an ``alert.raised`` event; ``members``: those of its
    operation (the register's), when it carries one."""
    data = event.data
    if not isinstance(data, AlertRaised) or event.unit is None:
        raise TypeError(f"{event.type} from {event.source} is not an agency's alert.raised")
    return AlertFacts(
        origin=event.unit,
        route=tuple(data.route),
        recipients=tuple(data.recipients),
        tlp=event.tlp,
        releasableto=event.releasable_countries,
        piireleasableto=event.pii_countries,
        members=members,
    )


@dataclass(frozen=True, slots=True)
class Rendered:
    """An alert routed and rendered: each recipient's inbox entry and receipt, ready to write."""

    event: CloudEvent
    recipients: tuple[Recipient, ...]
    deliveries: list[dict[str, Any]]
    receipts: list[Encoded]
    at: datetime


def render(
    event: CloudEvent, deps: NotifierDeps, now: datetime, members: frozenset[str] | None = None
) -> Rendered:
    """Route an ``alert.raised`` event and render its deliveries and receipts (no I/O);
    ``members``: those of the alert's operation (see :func:`facts_of`)."""
    recipients = _route(facts_of(event, members), deps.topology)
    deliveries = _deliveries(event, recipients, now, deps)
    receipts = _receipts(event, recipients, now)
    return Rendered(event, recipients, deliveries, receipts, now)


async def fan_out(event: CloudEvent, deps: NotifierDeps) -> tuple[Recipient, ...]:
    """Deliver an alert to every recipient's inbox and emit one ``alert.delivered`` each."""
    return (await fan_out_all([event], deps))[0]


async def fan_out_all(
    events: Sequence[CloudEvent], deps: NotifierDeps
) -> list[tuple[Recipient, ...]]:
    """:func:`fan_out` for several alerts: one inbox write and one publish for them all."""
    now = deps.clock()
    rendered = [render(event, deps, now) for event in events]
    await deliver(rendered, deps)
    return [r.recipients for r in rendered]


async def deliver(rendered: Sequence[Rendered], deps: NotifierDeps) -> None:
    """Write rendered alerts to their recipients' inboxes and queue their webhook jobs (at
    once), then publish their receipts.

    The jobs are queued beside the inbox write, not after it: waiting for one round trip
    before the other put a round trip on every webhook's path (issue 16). Both are
    idempotent, so a re-run after either failed completes the other. A job carries the
    recipient's view as rendered now, which is what the inbox stores too (a view depends
    only on the alert and the recipient's view of it).
    """
    pending = [
        (r, recipient, delivery, receipt)
        for r in rendered
        for recipient, delivery, receipt in zip(r.recipients, r.deliveries, r.receipts, strict=True)
    ]
    writes: list[Coroutine[Any, Any, object]] = [
        deps.inbox.deliver(
            [(recipient.unit, delivery, r.at.timestamp()) for r, recipient, delivery, _ in pending]
        )
    ]
    if deps.webhooks is not None:  # idempotent: a re-run after a crash queues nothing twice
        jobs = [
            (recipient.unit, _alert_of(delivery), delivery["event"])
            for _, recipient, delivery, _ in pending
        ]
        writes.append(deps.webhooks.enqueue_many(jobs))  # one round trip for the batch
    done = await asyncio.gather(*writes, return_exceptions=True)
    for outcome in done:  # the first failure, as it was raised (the claimer classifies it)
        if isinstance(outcome, BaseException):
            raise outcome
    stored = cast(list[dict[str, Any]], done[0])
    deps.metrics.inc(DELIVERIES, len(stored))
    receipts = []
    for (r, recipient, delivery, receipt), kept in zip(pending, stored, strict=True):
        if kept["delivered_at"] != delivery["delivered_at"]:
            # a redelivery: the stored time makes the first run's receipt, so it dedupes
            at = datetime.fromisoformat(kept["delivered_at"])
            receipt = _receipts(r.event, [recipient], at)[0]
        receipts.append(receipt)
    await deps.publisher.publish(receipts)  # deterministic ids: a re-run re-publishes nothing


def _alert_of(delivery: dict[str, Any]) -> AlertRef:
    return AlertRef(delivery["alert_source"], delivery["alert_id"])


def _deliveries(
    event: CloudEvent, recipients: Sequence[Recipient], now: datetime, deps: NotifierDeps
) -> list[dict[str, Any]]:
    """Each recipient's inbox entry; each view of the event is rendered once."""
    assert isinstance(event.data, AlertRaised)  # facts_of checked it
    views = views_of(event, {r.view for r in recipients})
    deadline = (now + deps.deadlines.for_severity(event.data.severity)).isoformat()
    return [
        {
            "alert_id": event.id,
            "alert_source": event.unit,
            "event": views[recipient.view],
            "reasons": [str(r) for r in recipient.reasons],
            "view": str(recipient.view),
            "severity": str(event.data.severity),
            "delivered_at": now.isoformat(),
            "deadline": deadline,
        }
        for recipient in recipients
    ]


def _receipts(alert: CloudEvent, recipients: Sequence[Recipient], at: datetime) -> list[Encoded]:
    """Each recipient's ``alert.delivered``, encoded.

    An alert's receipts differ only in id, recipient, reasons and view: the
    first is dumped by pydantic with those four as slots, and each receipt is
    that canonical text with its own values put in (building and encoding
    receipts one by one was a third of the notifier's time).
    """
    if not recipients:
        return []
    doc = _delivered(alert, recipients[0], at).model_dump(
        mode="json", by_alias=True, exclude_none=True
    )
    doc["id"] = _SLOTS[0]
    doc["data"].update(zip(("recipient", "reasons", "view"), _SLOTS[1:], strict=True))
    text = canonical_json(doc).decode()
    if any(text.count(_json(slot)) != 1 for slot in _SLOTS):  # ids have no control characters
        return [Encoded.of(_delivered(alert, r, at)) for r in recipients]  # but never guess
    cuts = sorted((text.index(_json(slot)), slot) for slot in _SLOTS)
    order = [_SLOTS.index(slot) for _, slot in cuts]
    pieces, start = [], 0
    for index, slot in cuts:
        pieces.append(text[start:index])
        start = index + len(_json(slot))
    pieces.append(text[start:])
    receipts = []
    for recipient in recipients:
        id_ = f"delivered/{alert.unit}/{alert.id}/{recipient.unit}"
        values = (_json(id_), *_recipient_json(recipient))
        parts = [pieces[0]]
        for position, piece in zip(order, pieces[1:], strict=True):
            parts += (values[position], piece)
        payload = "".join(parts).encode()
        receipts.append(Encoded(EventType.ALERT_DELIVERED, NOTIFIER_SOURCE, id_, payload))
    return receipts


# Placeholders no encoded value can contain: JSON escapes NUL, so "\u0000" appears only here.
_SLOTS = ("\x00id\x00", "\x00recipient\x00", "\x00reasons\x00", "\x00view\x00")
_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


@functools.lru_cache(maxsize=4096)
def _recipient_json(recipient: Recipient) -> tuple[str, str, str]:
    """A receipt's recipient, reasons and view as canonical JSON (routing repeats them)."""
    reasons = [reason.value for reason in recipient.reasons]
    return _json(recipient.unit), _json(reasons), _json(recipient.view.value)


def _delivered(alert: CloudEvent, recipient: Recipient, at: datetime) -> CloudEvent:
    # Not validated again: every value comes from the validated alert, routing or the clock.
    assert alert.unit is not None  # facts_of checked it
    data = AlertDelivered.model_construct(
        alert_id=alert.id,
        alert_source=alert.unit,
        recipient=recipient.unit,
        reasons=recipient.reasons,
        view=recipient.view,
        delivered_at=at,
    )
    id_ = f"{alert.unit}/{alert.id}/{recipient.unit}"
    return system_event(EventType.ALERT_DELIVERED, id_, alert, data, at)


def system_event(
    type_: EventType, id_: str, alert: CloudEvent, data: Any, at: datetime
) -> CloudEvent:
    # Deterministic ids: a re-run after a crash re-publishes the same (source, id); they name
    # the alert's origin, so two units' alerts of one id never share one. Not validated again:
    # every value comes from the validated alert, the notifier or the clock.
    return CloudEvent.model_construct(
        specversion="1.0",
        id=f"{type_.value.split('.')[1]}/{id_}",
        source=NOTIFIER_SOURCE,
        type=type_,
        time=at,
        subject=alert.id,
        tlp=alert.tlp,
        releasableto=alert.releasableto,
        piireleasableto=alert.piireleasableto,
        data=data,
    )
