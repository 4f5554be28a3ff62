"""The Redis ingress: raw CloudEvents XADDed by agency systems, forwarded or dead-lettered.

Each publisher of the configuration has its own ingress stream,
:func:`~services.core.streams.ingress_stream` (``{liaison}:stream:ingress:<publisher>``),
to which that agency's system appends one entry per event, its CloudEvent JSON in
field ``__data__``; its Valkey user may append there and nowhere else. Ingest
validates each entry as the HTTP API would (:func:`~services.ingest.intake.validate_event`),
for that publisher's units only, publishes the valid ones to their canonical
streams through the idempotent publisher, and puts the others on the dead-letter
stream with the reason — a change of an alert that another unit raised among them
(:func:`~services.ingest.intake.foreign_changes`, reason ``invalid event: subject: …``);
only then are the entries acknowledged (by the caller),
so a crash in between redelivers them and the publisher's ``(source, id)`` check
keeps the effect single. Entries over 16 KiB are screened as HTTP bodies are
(:mod:`~services.ingest.screening`: one event that large in a worker process), and the
loop is yielded between entries, so that an agency's large entries never stall the HTTP
API sharing the process.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from schemas.events import CloudEvent
from schemas.topology import Topology
from services.core import streams
from services.core.alert_register import AlertRegister, OwnerCheck
from services.core.bus import Entry, Publisher, dead_letter_fields
from services.core.config import Principal
from services.core.keyring import Registry
from services.core.metrics import EVENTS_ACCEPTED, EVENTS_DUPLICATE, NO_METRICS, Metrics
from services.core.problems import Problem
from services.ingest.intake import Rejected, foreign_changes, validate_event
from services.ingest.screening import INLINE_MAX, MAX_BODY, Screened, Screener
from services.ingest.signatures import refused_signatures


class NotAnEvent(ValueError):
    """An ingress payload that is not a valid agency CloudEvent; the message says why."""


def parse_payload(payload: bytes | str) -> Any:
    """The JSON of an entry's ``__data__``, or :class:`NotAnEvent`."""
    try:
        return json.loads(payload)
    except UnicodeDecodeError:
        raise NotAnEvent("not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise NotAnEvent(f"not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except ValueError as exc:  # an integer of over 4,300 digits (Python's guard)
        raise NotAnEvent(f"not JSON we read: {str(exc).split(';')[0]}") from None


def event_of(
    payload: bytes | str,
    topology: Topology,
    agency: Principal | None = None,
    registry: Registry | None = None,
) -> CloudEvent:
    """The canonical event of an ingress payload, or :class:`NotAnEvent` with every error
    located; with ``agency``, only for that publisher's units, and with ``registry`` signed as
    that publisher must (docs/provenance.md)."""
    raw = parse_payload(payload)
    if isinstance(raw, dict) and not {"specversion", "type", "source"} & raw.keys():
        # an entry without __data__ reaches us as all its fields: say which field is expected
        raise NotAnEvent(f"no CloudEvent: put its JSON in field {streams.EVENT_FIELD}")
    try:
        event = validate_event(raw, topology)
    except Rejected as exc:
        raise NotAnEvent(
            "invalid event: " + "; ".join(f"{r.field}: {r.message}" for r in exc.rejections)
        ) from None
    check_units(event, agency)
    if agency is not None and registry is not None:
        refused = refused_signatures([event.to_json()], registry, agency.name, False)
        if refused:
            raise NotAnEvent(
                "invalid event: " + "; ".join(f"{r.field}: {r.message}" for r in refused)
            )
    return event


def check_units(event: CloudEvent, agency: Principal | None) -> None:
    """:class:`NotAnEvent` unless ``agency`` (when given) may publish for the event's unit."""
    if agency is not None and event.unit is not None and event.unit not in agency.units:
        raise NotAnEvent(f"{agency.name} may not publish for {event.unit}")


async def _screened(payload: bytes, agency: Principal, screener: Screener) -> Screened:
    """A large entry's event, parsed and validated in a worker process."""
    headers = {"content-type": "application/json"}
    try:
        events = await screener.events(headers, payload, agency.name, agency.units)
    except Problem as problem:
        located = "; ".join(f"{e['field']}: {e['message']}" for e in (problem.errors or [])[:20])
        raise NotAnEvent(f"invalid event: {located or problem.detail}") from None
    if len(events) != 1:
        raise NotAnEvent("one CloudEvent per entry, not an array")
    return events[0]


async def forward(
    entries: Sequence[Entry],
    agency: Principal,
    screener: Screener,
    publisher: Publisher,
    redis: Redis,
    metrics: Metrics = NO_METRICS,
    owners: OwnerCheck | None = None,
) -> None:
    """Publish the valid entries of ``agency``'s ingress, dead-letter the others
    (atomically, all of them at once).

    ``owners`` (default: the register on ``redis``) tells which alerts other units raised.
    Raises only when Redis fails; then nothing is acknowledged and the claimer
    redelivers the batch (a re-publish is a duplicate, so nothing doubles).
    """
    parsed: list[tuple[Entry, CloudEvent | Screened]] = []
    refused: list[tuple[Entry, str]] = []
    for entry in entries:
        try:
            if len(entry.payload) > MAX_BODY:
                raise NotAnEvent(f"larger than {MAX_BODY} bytes, the limit of an HTTP request")
            if len(entry.payload) > INLINE_MAX:
                parsed.append((entry, await _screened(entry.payload, agency, screener)))
            else:
                event = event_of(entry.payload, screener.topology, agency, screener.registry)
                parsed.append((entry, event))
        except NotAnEvent as exc:
            refused.append((entry, str(exc)))
        await asyncio.sleep(0)  # a batch of 500 entries never holds the loop for long
    events = [event for _, event in parsed]
    foreign = {
        r.index: f"invalid event: {r.field}: {r.message}"
        for r in await foreign_changes(events, owners or AlertRegister(redis))
    }
    refused += [(parsed[i][0], why) for i, why in foreign.items() if i is not None]
    valid = [event for i, event in enumerate(events) if i not in foreign]
    if valid:
        new = sum(await publisher.publish(valid))
        metrics.inc(EVENTS_ACCEPTED, new, "ingress")
        metrics.inc(EVENTS_DUPLICATE, len(valid) - new, "ingress")
    if refused:
        async with redis.pipeline(transaction=True) as pipe:
            for entry, reason in refused:
                pipe.xadd(
                    streams.DEAD_LETTERS,
                    dead_letter_fields(
                        origin=entry.stream,
                        reason=reason,
                        payload=entry.payload,
                        entry_id=entry.entry_id,
                    ),
                )
            await pipe.execute()
