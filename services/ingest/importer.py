"""``liaison import``: an agency file through its adapter, the intake and the publisher.

Rows are validated one by one (a bad row never stops the file) and the
good ones published in batches, each batch all-or-nothing through the
idempotent :class:`~services.core.bus.Publisher`: an event id derived from the
agency's own record number makes a re-import publish nothing new. Before a
batch is published, a row changing an alert that another unit raised is
rejected, naming the owner (:func:`~services.ingest.intake.foreign_changes`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO

from redis.asyncio import Redis

from schemas.events import NEEDS_SUBJECT, CloudEvent
from schemas.topology import Topology
from services.core import streams
from services.core.alert_register import OwnerCheck
from services.core.bus import Publisher, dead_letter_fields, seen_field
from services.core.keyring import Registry
from services.ingest.adapters.base import Adapter, Record, RowInvalid, agency_field
from services.ingest.intake import Rejected, foreign_changes, validate_event

BATCH = 500
IMPORT_ORIGIN = "import:"
"""Dead letters of ``liaison import --dead-letter`` have origin ``import:<adapter>``."""


@dataclass(frozen=True, slots=True)
class RowError:
    """Why one row of the file was rejected (one of possibly several reasons)."""

    row: int
    field: str
    reason: str


@dataclass(slots=True)
class ImportSummary:
    """What an import did."""

    rows: int = 0
    published: int = 0
    duplicates: int = 0
    errors: list[RowError] = field(default_factory=list)
    rejected_rows: int = 0


def check_record(
    adapter: Adapter, record: Record, topology: Topology, registry: Registry | None = None
) -> CloudEvent:
    """The canonical event of one record, or :class:`RowInvalid` in the agency's terms; with
    ``registry``, refused when its unit's publisher requires signed events (an agency file
    carries no signatures: docs/provenance.md)."""
    if record.problem is not None:
        raise RowInvalid([("(row)", record.problem)])
    candidate = adapter.to_event(record.raw, topology)
    try:
        event = validate_event(candidate, topology)
    except Rejected as exc:
        raise RowInvalid(
            [(agency_field(r.field, adapter.fields), r.message) for r in exc.rejections]
        ) from None
    publisher = registry.requires(event.unit) if registry and event.unit else None
    if publisher is not None:
        reason = (
            f"signature required: {publisher} signs every event for {event.unit}; an agency "
            "file carries none (publish signed events over HTTP or the Redis ingress)"
        )
        raise RowInvalid([("(row)", reason)])
    return event


def checked(
    adapter: Adapter, file: IO[bytes], topology: Topology, registry: Registry | None = None
) -> Iterator[tuple[Record, CloudEvent | RowInvalid]]:
    """Every record of the file with its event or why it was rejected.

    A record repeating an event id of an earlier row is rejected: with one id
    and two contents, which one the agency meant cannot be told.
    """
    first_row: dict[str, int] = {}
    for record in adapter.records(file):
        try:
            event = check_record(adapter, record, topology, registry)
        except RowInvalid as exc:
            yield record, exc
            continue
        earlier = first_row.setdefault(seen_field(event), record.row)
        if earlier != record.row:
            yield record, RowInvalid([("(row)", f"record {event.id} repeats row {earlier}")])
        else:
            yield record, event


async def import_file(
    adapter: Adapter,
    file: IO[bytes],
    topology: Topology,
    publisher: Publisher,
    *,
    owners: OwnerCheck,
    dead_letters: Redis | None = None,
    label: str = "",
    progress: Callable[[], None] | None = None,
    registry: Registry | None = None,
) -> ImportSummary:
    """Publish a file's valid rows in batches; report the others (and dead-letter them if asked).

    ``owners`` tells which alerts other units raised (a row may change only its unit's own).
    """
    summary = ImportSummary()
    batch: list[CloudEvent] = []
    changes: dict[int, Record] = {}  # batch index → row of each alert change, which may be refused
    refused: list[tuple[Record, RowInvalid]] = []

    async def flush() -> None:
        refusals: set[int] = set()
        for rejection in await foreign_changes(batch, owners):
            assert rejection.index is not None  # a batch's rejections say where
            refusals.add(rejection.index)
            record = changes[rejection.index]
            field = agency_field(rejection.field, adapter.fields)
            summary.rejected_rows += 1
            summary.errors.append(RowError(record.row, field, rejection.message))
            refused.append((record, RowInvalid([(field, rejection.message)])))
        flags = await publisher.publish([ev for i, ev in enumerate(batch) if i not in refusals])
        summary.published += sum(flags)
        summary.duplicates += len(flags) - sum(flags)
        if dead_letters is not None and refused:
            await _dead_letter(dead_letters, adapter, label, refused)
        batch.clear()
        changes.clear()
        refused.clear()
        if progress is not None:
            progress()

    for record, outcome in checked(adapter, file, topology, registry):
        summary.rows += 1
        if isinstance(outcome, RowInvalid):
            summary.rejected_rows += 1
            summary.errors += [RowError(record.row, f, reason) for f, reason in outcome.errors]
            refused.append((_detached(adapter, record), outcome))
        else:
            if outcome.type in NEEDS_SUBJECT:
                changes[len(batch)] = _detached(adapter, record)
            batch.append(outcome)
        if len(batch) + len(refused) >= BATCH:
            await flush()
    await flush()
    summary.errors.sort(key=lambda error: error.row)  # those found at publication came last
    return summary


def _detached(adapter: Adapter, record: Record) -> Record:
    """The record with its text, kept apart from the file reader (which may reuse the raw form)."""
    text = record.raw if record.problem is not None else adapter.dump(record.raw)
    return Record(record.row, text, record.problem)


async def _dead_letter(
    redis: Redis, adapter: Adapter, label: str, refused: list[tuple[Record, RowInvalid]]
) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        for record, exc in refused:
            fields = dead_letter_fields(
                origin=IMPORT_ORIGIN + adapter.name,
                reason=str(exc),
                payload=str(record.raw),
                entry_id=f"{label} row {record.row}".strip(),
            )
            pipe.xadd(streams.DEAD_LETTERS, fields)
        await pipe.execute()
