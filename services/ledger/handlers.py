"""What the ledger does with a batch of stream entries: record every event once."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from pydantic import ValidationError

from schemas.events import CloudEvent
from services.bus import DeadLetters, Entry
from services.ledger.store import AppendResult

log = logging.getLogger(__name__)


class Ledger(Protocol):
    """Where events are recorded (:class:`~services.ledger.store.SqlLedger`)."""

    async def append(self, events: Sequence[CloudEvent]) -> AppendResult:
        """Append the events not yet recorded, in order, atomically."""
        ...


async def record_events(
    entries: Sequence[Entry], ledger: Ledger, dead: DeadLetters
) -> AppendResult:
    """Append a batch in one transaction; unparseable entries go to the dead letters.

    Raises only if the ledger itself fails, leaving the batch pending for a retry.
    """
    events: list[CloudEvent] = []
    for entry in entries:
        try:
            events.append(CloudEvent.from_json(entry.payload))
        except ValidationError as exc:
            await dead.put(entry, f"ledger: not a valid event: {_summary(exc)}")
    result = await ledger.append(events)
    if result.duplicates:
        log.info("ledger: %d already recorded (redelivery or re-publish)", result.duplicates)
    return result


def _summary(exc: ValidationError) -> str:
    first = exc.errors(include_url=False)[:3]
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'event'}: {e['msg']}" for e in first)
