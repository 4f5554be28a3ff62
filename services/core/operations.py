"""The register of operations (closed groups): the notifier keeps it, ingest reads it.

``operation.opened`` and ``operation.closed`` travel on the alert stream, so the notifier
meets an operation's opening before the alerts published after it, and registers it in
:data:`~services.core.streams.OPERATIONS`. Ingest reads the register to refuse, at the door
and located at ``operation``, an alert or seizure of an operation that is unknown, not yet
open, closed, or that its unit is not a member of; the notifier checks again (the register
may have changed since), against the time the server accepted the entry (its stream id),
which no publisher can set. This module is shared: neither service imports the other's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from redis.asyncio import Redis

from schemas.events import CloudEvent
from schemas.operations import OperationOpened
from services.core import streams


@dataclass(frozen=True, slots=True)
class Operation:
    """One registered operation."""

    name: str
    owner: str
    """The unit that opened it (and may close it)."""
    members: frozenset[str]
    """Its member units, the owner included."""
    start: datetime
    end: datetime
    closed_at: datetime | None = None
    """When its owner closed it (``operation.closed``), if before its end."""

    @classmethod
    def of(cls, event: CloudEvent) -> Operation:
        """The operation an ``operation.opened`` event opens."""
        data = event.data
        if not isinstance(data, OperationOpened) or event.unit is None:
            raise TypeError(f"{event.type} from {event.source} opens no operation")
        members = frozenset(data.members) | {event.unit}
        return cls(data.name, event.unit, members, data.start, data.end)

    def closes_at(self) -> datetime:
        """When it stops taking alerts: its end, or earlier when its owner closed it."""
        return min(self.end, self.closed_at) if self.closed_at else self.end

    def refusal(self, unit: str | None, at: datetime) -> str | None:
        """Why ``unit`` may not publish an alert or seizure of this operation at ``at``; None
        when it may."""
        if at < self.start:
            return f"operation {self.name} opens at {self.start.isoformat()}"
        if at >= self.closes_at():
            return f"operation {self.name} closed at {self.closes_at().isoformat()}"
        if unit not in self.members:
            return f"{unit} is not a member of operation {self.name}"
        return None

    def to_json(self) -> str:
        """The register's value."""
        doc = {
            "owner": self.owner,
            "members": sorted(self.members),
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "closed_at": self.closed_at.isoformat() if self.closed_at else None,
        }
        return json.dumps(doc, sort_keys=True)

    @classmethod
    def from_json(cls, name: str, text: str | bytes) -> Operation:
        """An operation from its register value."""
        doc = json.loads(text)
        closed = doc.get("closed_at")
        return cls(
            name,
            doc["owner"],
            frozenset(doc["members"]),
            datetime.fromisoformat(doc["start"]),
            datetime.fromisoformat(doc["end"]),
            datetime.fromisoformat(closed) if closed else None,
        )


def unknown(name: str) -> str:
    """Why an alert naming an operation nobody opened is refused."""
    return f"unknown operation {name!r}: open it with operation.opened first"


class OperationLookup(Protocol):
    """What ingest asks of the register (:class:`OperationRegister` on Redis)."""

    async def operations(self, names: Sequence[str]) -> list[Operation | None]:
        """Each named operation, None for a name nobody opened."""
        ...


class OperationRegister:
    """:data:`~services.core.streams.OPERATIONS` on Redis."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def operations(self, names: Sequence[str]) -> list[Operation | None]:
        """See :meth:`OperationLookup.operations`; one round trip."""
        if not names:
            return []
        values = await self._redis.hmget(streams.OPERATIONS, list(names))
        return [
            None if value is None else Operation.from_json(name, value)
            for name, value in zip(names, values, strict=True)
        ]

    async def open(self, operation: Operation) -> Operation:
        """Register ``operation`` unless its name is taken; the registered one either way."""
        if await self._redis.hsetnx(streams.OPERATIONS, operation.name, operation.to_json()):
            return operation
        (found,) = await self.operations([operation.name])
        assert found is not None  # HSETNX found it: operations are never removed
        return found

    async def close(self, operation: Operation, at: datetime) -> Operation:
        """Record that its owner closed ``operation`` at ``at`` (the earliest closing counts)."""
        if operation.closed_at is not None and operation.closed_at <= at:
            return operation
        closed = Operation(
            operation.name,
            operation.owner,
            operation.members,
            operation.start,
            operation.end,
            at.astimezone(UTC),
        )
        await self._redis.hset(streams.OPERATIONS, operation.name, closed.to_json())
        return closed
