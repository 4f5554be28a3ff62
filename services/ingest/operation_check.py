"""Ingest's checks of operations: an alert or seizure of an operation, and the operation
events themselves, against the register (:mod:`services.core.operations`).

Refused at the door, located and with the reason (a 422 over HTTP): an ``operation`` the
register does not know (and the same request does not open), one not open yet or closed, or
one the publishing unit is not a member of; an ``operation.opened`` whose name another unit
took; an ``operation.closed`` of an operation unknown or not the unit's own. After the
publish, the operations a request opened are registered at once (:func:`register_opened`),
and those it closed closed, so an alert published right after the 202 finds them so; the notifier registers
them too (idempotent) and checks every alert again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from schemas.events import CloudEvent
from schemas.operations import OperationClosed, OperationOpened
from schemas.vocabulary import EventType
from services.core.operations import Operation, OperationLookup, OperationRegister, unknown
from services.ingest.intake import Rejection

OPERATION_TYPES = frozenset({EventType.OPERATION_OPENED, EventType.OPERATION_CLOSED})


def concerned(event_type: EventType, payload: bytes) -> bool:
    """Whether a screened event may need :func:`operation_refusals` (a cheap test on its text)."""
    return event_type in OPERATION_TYPES or b'"operation":' in payload


async def operation_refusals(
    events: Sequence[tuple[int, CloudEvent]],
    lookup: OperationLookup | None,
    now: datetime,
    batch: bool = True,
) -> list[Rejection]:
    """A located rejection for each event of ``events`` (index, event) the register refuses."""
    names = sorted(
        {ev.operation for _, ev in events if ev.operation}
        | {
            ev.data.name
            for _, ev in events
            if isinstance(ev.data, OperationOpened | OperationClosed)
        }
    )
    if not names:
        return []
    found = await lookup.operations(names) if lookup is not None else [None] * len(names)
    known = {name: op for name, op in zip(names, found, strict=True) if op is not None}
    rejections = []
    for index, event in events:
        where = index if batch else None
        if isinstance(event.data, OperationOpened):
            taken = known.get(event.data.name)
            if taken is not None and taken.owner != event.unit:
                message = f"operation {taken.name} was opened already, by {taken.owner}"
                rejections.append(Rejection(where, "data.name", message))
            elif taken is None:
                known[event.data.name] = Operation.of(event)  # later events of the request
        elif isinstance(event.data, OperationClosed):
            operation = known.get(event.data.name)
            if operation is None:
                rejections.append(Rejection(where, "data.name", unknown(event.data.name)))
            elif operation.owner != event.unit:
                message = (
                    f"only {operation.owner}, which opened operation {operation.name}, may close it"
                )
                rejections.append(Rejection(where, "data.name", message))
        elif event.operation is not None:
            operation = known.get(event.operation)
            why = (
                unknown(event.operation)
                if operation is None
                else operation.refusal(event.unit, now)
            )
            if why is not None:
                rejections.append(Rejection(where, "operation", why))
    return rejections


async def register_accepted(
    events: Sequence[CloudEvent], register: OperationRegister, now: datetime
) -> None:
    """Register the operations ``events`` open and close (after they were published, so the
    ledger will have them), so that the publisher's next request finds them so."""
    for event in events:
        if event.type is EventType.OPERATION_OPENED:
            await register.open(Operation.of(event))
        elif isinstance(event.data, OperationClosed):
            (operation,) = await register.operations([event.data.name])
            if operation is not None and operation.owner == event.unit:
                await register.close(operation, now)
