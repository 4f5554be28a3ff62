"""Turning what an agency sent into canonical events, or into located errors.

Pure functions: the HTTP API, the file adapters and the Redis ingress all
validate through here, so an event means the same thing whichever way it came.
One check needs the system's state: whether a change names an alert that
another unit raised (:func:`foreign_changes`, through a read-only port).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from schemas.alerts import MAX_ALERT_BYTES, AlertRaised
from schemas.events import NEEDS_SUBJECT, CloudEvent, alert_ref_of, canonical_json
from schemas.limits import explain
from schemas.operations import OperationOpened
from schemas.topology import Topology
from schemas.vocabulary import AGENCY_TYPES, EventType
from services.core.alert_register import OwnerCheck, not_theirs

MAX_BATCH = 1000


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why one event (or one field of it) was refused."""

    index: int | None
    field: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        """The shape of one entry of a 422 problem's ``errors``."""
        return {"index": self.index, "field": self.field, "message": self.message}


class Rejected(Exception):
    """Nothing was accepted; ``rejections`` says what and where (the first ``count`` errors,
    or fewer when only the first ones were kept)."""

    def __init__(self, rejections: Sequence[Rejection], count: int | None = None) -> None:
        super().__init__("; ".join(f"{r.field}: {r.message}" for r in rejections[:5]))
        self.rejections = tuple(rejections)
        self.count = len(self.rejections) if count is None else count


def _loc(parts: Iterable[object]) -> str:
    return ".".join(str(p) for p in parts if not str(p).startswith("function-"))


def validate_event(raw: Any, topology: Topology, index: int | None = None) -> CloudEvent:
    """One canonical agency event from its JSON form, or :class:`Rejected`."""
    try:
        event = CloudEvent.model_validate(raw)
    except ValidationError as exc:
        raise Rejected(_rejections(exc, raw, index)) from None
    problems = []
    if event.type not in AGENCY_TYPES:
        problems.append(Rejection(index, "type", f"{event.type} is emitted by the system only"))
    if event.unit is not None and event.unit not in topology:
        problems.append(Rejection(index, "source", f"unknown unit {event.unit!r}"))
    if isinstance(event.data, AlertRaised):
        for i, unit in enumerate(event.data.recipients):
            if unit not in topology:
                problems.append(Rejection(index, f"data.recipients.{i}", f"unknown unit {unit!r}"))
    problems += static_refusals(event, topology, index)
    if not problems and event.type in ALERT_TYPES:
        problems += _oversize(event, index)
    if problems:
        raise Rejected(problems)
    return event


ALERT_TYPES = frozenset(
    {
        EventType.ALERT_RAISED,
        EventType.ALERT_UPDATED,
        EventType.ALERT_CANCELLED,
        EventType.ALERT_CLOSED,
    }
)
"""The events bounded by :data:`~schemas.alerts.MAX_ALERT_BYTES`."""


IN_OPERATIONS = frozenset({EventType.ALERT_RAISED, EventType.SEIZURE_REPORTED})
"""The types that may belong to an operation (carry the ``operation`` attribute)."""


def static_refusals(event: CloudEvent, topology: Topology, index: int | None) -> list[Rejection]:
    """What needs no register: ``operation`` on a type that cannot belong to one, members the
    topology does not know."""
    problems = []
    if event.operation is not None and event.type not in IN_OPERATIONS:
        message = (
            f"{event.type} cannot belong to an operation: only alert.raised and seizure.reported"
        )
        problems.append(Rejection(index, "operation", message))
    if isinstance(event.data, OperationOpened):
        for i, unit in enumerate(event.data.members):
            if unit not in topology:
                problems.append(Rejection(index, f"data.members.{i}", f"unknown unit {unit!r}"))
    return problems


def _oversize(event: CloudEvent, index: int | None) -> list[Rejection]:
    """An alert over :data:`MAX_ALERT_BYTES`, located at its largest part of ``data``."""
    size = len(event.to_json())
    if size <= MAX_ALERT_BYTES:
        return []
    data = event.model_dump(mode="json", by_alias=True, exclude_none=True)["data"]
    largest = max(data, key=lambda name: len(canonical_json({name: data[name]})))
    message = (
        f"the alert is {size} bytes as canonical JSON, more than the {MAX_ALERT_BYTES} "
        "(64 KiB) an alert may have; this is its largest part"
    )
    return [Rejection(index, f"data.{largest}", message)]


def _rejections(exc: ValidationError, raw: Any, index: int | None) -> list[Rejection]:
    try:
        errors = exc.errors()
    except UnicodeEncodeError:  # a message quoting a lone surrogate ("\\udcff") cannot render
        return _surrogate_rejections(raw, index)
    return [Rejection(index, _loc(e["loc"]) or "(event)", explain(e)) for e in errors]


def _surrogate_rejections(raw: Any, index: int | None) -> list[Rejection]:
    """The errors of ``raw`` with its lone surrogates shown as U+FFFD, each saying why."""
    note = " (the text holds a lone surrogate escape: not valid Unicode)"
    try:
        CloudEvent.model_validate(_without_surrogates(raw))
    except ValidationError as exc:
        return [
            Rejection(index, _loc(e["loc"]) or "(event)", explain(e) + note) for e in exc.errors()
        ]
    return [Rejection(index, "(event)", note.strip(" ()"))]


def _without_surrogates(value: Any) -> Any:
    """``value`` with every lone surrogate replaced by U+FFFD."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, dict):
        return {_without_surrogates(k): _without_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_surrogates(v) for v in value]
    return value


def validate_batch(body: Any, topology: Topology) -> tuple[list[CloudEvent], bool]:
    """A JSON object or array of events → canonical events (all or none) and whether it was a batch."""
    if isinstance(body, dict):
        return [validate_event(body, topology)], False
    if not isinstance(body, list):
        raise Rejected(
            [Rejection(None, "(body)", "expected a CloudEvent object or an array of them")]
        )
    if not body:
        raise Rejected([Rejection(None, "(body)", "the batch is empty")])
    events: list[CloudEvent] = []
    rejections: list[Rejection] = []
    for index, raw in enumerate(body):
        try:
            events.append(validate_event(raw, topology, index))
        except Rejected as exc:
            rejections.extend(exc.rejections)
    if rejections:
        raise Rejected(rejections)
    return events, True


def foreign_units(events: Sequence[CloudEvent], allowed: Iterable[str]) -> list[str]:
    """Units the events speak for that the publisher may not publish for."""
    permitted = set(allowed)
    return sorted({ev.unit for ev in events if ev.unit and ev.unit not in permitted})


class Attributes(Protocol):
    """What :func:`foreign_changes` reads of an event (a :class:`CloudEvent`, or ingest's
    screened form of one)."""

    @property
    def type(self) -> EventType: ...
    @property
    def source(self) -> str: ...
    @property
    def id(self) -> str: ...
    @property
    def subject(self) -> str | None: ...


async def foreign_changes(
    events: Sequence[Attributes], owners: OwnerCheck, batch: bool = True
) -> list[Rejection]:
    """A rejection (at ``subject``, naming the owners) for each change of an alert that its
    source never raised while another unit did: only the originator changes an alert.

    A change of an alert raised earlier in the same batch, or published and not delivered
    yet, is its source's own; one of an id nobody raised yet passes (the notifier holds it
    until its alert comes, and dead-letters it if it never does).
    """
    refs = [alert_ref_of(ev.type, ev.source, ev.id, ev.subject) for ev in events]
    raised = {
        ref for ev, ref in zip(events, refs, strict=True) if ev.type is EventType.ALERT_RAISED
    }
    changes = [
        (index, ref)
        for index, (ev, ref) in enumerate(zip(events, refs, strict=True))
        if ev.type in NEEDS_SUBJECT and ref is not None and ref not in raised
    ]
    if not changes:
        return []
    taken = await owners.owners_instead([alert for _, alert in changes])
    return [
        Rejection(index if batch else None, "subject", not_theirs(alert, others))
        for (index, alert), others in zip(changes, taken, strict=True)
        if others
    ]
