"""The access stream into the access chain: records appended, then acknowledged
(subscribed in :mod:`services.ledger.app`).

The API appended each record to :data:`~services.core.streams.ACCESS` before answering;
here the ledger's group reads them, appends them to the access chain in one transaction
per batch (:class:`~services.ledger.access_store.AccessStore`, idempotent by record id),
and only then acknowledges them: a crash between the two leaves them pending for the
claimer, never lost. An entry that is no access record is dead-lettered with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.core.bus import DeadLetters, Entry
from services.core.streaming import GroupOptions
from services.ledger.access_store import NotARecord, parse_record

ACCESS_OPTIONS = GroupOptions(max_records=200, queue_batches=2)


async def prepare_access(entries: Sequence[Entry], dead: DeadLetters) -> list[dict[str, Any]]:
    """The records of a batch; entries that are none go to the dead letters."""
    records = []
    for entry in entries:
        try:
            records.append(parse_record(entry.payload))
        except NotARecord as exc:
            await dead.put(entry, f"ledger: not an access record: {exc}")
    return records
