"""What the ledger does with stream entries: record every event once.

Two steps, so that a service can overlap them: :func:`prepare_entries`
(per entry: check it and build its record; refused entries go to the dead
letters) and :meth:`Ledger.append_records` (one transaction for records
from many batches). :func:`record_events` does both at once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from pydantic import ValidationError

from services.core.bus import DeadLetters, Entry
from services.ledger.records import Record, record_of_payload
from services.ledger.store import AppendResult

log = logging.getLogger(__name__)


class Ledger(Protocol):
    """Where events are recorded (:class:`~services.ledger.store.SqlLedger`)."""

    async def append_records(self, records: Sequence[Record]) -> AppendResult:
        """Append the records not yet recorded, in order, atomically."""
        ...


async def prepare_entries(entries: Sequence[Entry], dead: DeadLetters) -> list[Record]:
    """The records of a batch's events; entries that are no valid event go to the dead letters."""
    records: list[Record] = []
    for entry in entries:
        try:
            records.append(record_of_payload(entry.payload))
        except ValidationError as exc:
            await dead.put(entry, f"ledger: not a valid event: {_summary(exc)}")
    return records


async def append_prepared(batches: Sequence[Sequence[Record]], ledger: Ledger) -> AppendResult:
    """Append prepared batches in one transaction. Raises only if the ledger itself fails."""
    result = await ledger.append_records([record for batch in batches for record in batch])
    if result.duplicates:
        log.info("ledger: %d already recorded (redelivery or re-publish)", result.duplicates)
    return result


async def record_events(
    entries: Sequence[Entry], ledger: Ledger, dead: DeadLetters
) -> AppendResult:
    """Append a batch in one transaction; unparseable entries go to the dead letters.

    Raises only if the ledger itself fails, leaving the batch pending for a retry.
    """
    return await append_prepared([await prepare_entries(entries, dead)], ledger)


def _summary(exc: ValidationError) -> str:
    first = exc.errors(include_url=False)[:3]
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'event'}: {e['msg']}" for e in first)
