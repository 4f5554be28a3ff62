"""Operations at the notifier: registering them, and which alerts of them may go out.

``operation.opened``/``operation.closed`` come on the alert stream, in order with the alerts.
Before a batch is admitted, :func:`sort_operations` registers the operations it opens and
closes, in stream order, and decides each alert of an operation against the register at the
time the server accepted its entry (its stream id: no publisher can set it): it goes to the
members (their set is returned for routing), is refused (dead-lettered with the reason: the
operation closed, not yet open, its unit not a member), or, for an operation nobody opened
yet, held back for the claimer to retry (another notifier process may be registering it) and
dead-lettered if it never comes. Ingest refuses all of these already, with a 422; this
catches what raced past that check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from schemas.events import CloudEvent
from schemas.operations import OperationClosed, OperationOpened
from schemas.vocabulary import EventType
from services.core.bus import Entry
from services.core.operations import Operation, unknown


class Operations(Protocol):
    """The register of operations (:class:`~services.core.operations.OperationRegister`)."""

    async def operations(self, names: Sequence[str]) -> list[Operation | None]: ...
    async def open(self, operation: Operation) -> Operation: ...
    async def close(self, operation: Operation, at: datetime) -> Operation: ...


@dataclass(slots=True)
class Gate:
    """A batch sorted by its operations."""

    passed: list[tuple[Entry, CloudEvent]] = field(default_factory=list)
    """What goes on to admission (operation events included: the ledger has them anyway)."""
    members: dict[int, frozenset[str]] = field(default_factory=dict)
    """The members of each passed alert's operation, by the event's ``id()``."""
    refused: list[tuple[Entry, str]] = field(default_factory=list)
    held: list[tuple[Entry, str]] = field(default_factory=list)


def accepted_at(entry: Entry, fallback: datetime) -> datetime:
    """When the server accepted a stream entry: the milliseconds of its id."""
    millis, _, _ = entry.entry_id.partition("-")
    if not millis.isdigit():
        return fallback
    return datetime.fromtimestamp(int(millis) / 1000, UTC)


async def sort_operations(
    batch: Sequence[tuple[Entry, CloudEvent]], register: Operations | None, now: datetime
) -> Gate:
    """Register the batch's operations and decide its alerts of operations, in stream order.

    Without a register (a notifier wired without one) operation events pass unregistered and
    alerts of operations are held back."""
    gate = Gate()
    names = sorted({ev.operation for _, ev in batch if ev.operation} | _named(batch))
    if not names or register is None:
        for entry, event in batch:
            if event.operation and event.type is EventType.ALERT_RAISED:
                gate.held.append((entry, f"notifier: {event.type}: no register of operations"))
            else:
                gate.passed.append((entry, event))
        return gate
    known = {
        name: op
        for name, op in zip(names, await register.operations(names), strict=True)
        if op is not None
    }
    for entry, event in batch:
        if event.type is EventType.OPERATION_OPENED:
            why = await _open(event, known, register)
        elif event.type is EventType.OPERATION_CLOSED:
            why = await _close(event, known, register, accepted_at(entry, now))
        elif event.operation and event.type is EventType.ALERT_RAISED:
            operation = known.get(event.operation)
            if operation is None:
                gate.held.append((entry, f"notifier: {event.type}: {unknown(event.operation)}"))
                continue
            why = operation.refusal(event.unit, accepted_at(entry, now))
            if why is None:
                gate.members[id(event)] = operation.members
        else:
            why = None
        if why is None:
            gate.passed.append((entry, event))
        else:
            gate.refused.append((entry, f"notifier: {event.type} from {event.source}: {why}"))
    return gate


def _named(batch: Sequence[tuple[Entry, CloudEvent]]) -> set[str]:
    """The operations the batch opens or closes."""
    return {
        ev.data.name for _, ev in batch if isinstance(ev.data, OperationOpened | OperationClosed)
    }


async def _open(event: CloudEvent, known: dict[str, Operation], register: Operations) -> str | None:
    operation = Operation.of(event)
    kept = await register.open(operation)
    known[kept.name] = kept
    if (kept.owner, kept.members, kept.start, kept.end) != (
        operation.owner,
        operation.members,
        operation.start,
        operation.end,
    ):
        return f"operation {operation.name} was opened already, by {kept.owner}"
    return None


async def _close(
    event: CloudEvent, known: dict[str, Operation], register: Operations, at: datetime
) -> str | None:
    assert isinstance(event.data, OperationClosed)  # the schema's model of the type
    operation = known.get(event.data.name)
    if operation is None:
        return unknown(event.data.name)
    if operation.owner != event.unit:
        return f"only {operation.owner}, which opened operation {operation.name}, may close it"
    known[operation.name] = await register.close(operation, at)
    return None
