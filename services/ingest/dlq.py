"""The dead-letter stream, for operators: list entries, re-drive one once its cause is fixed.

Where an entry goes back to depends on its ``origin``:

* a publisher's ingress stream and ``import:<adapter>`` rows are validated again
  (an ingress entry for that publisher's units, an import row through its
  adapter first) and published to their canonical stream, idempotently — an
  event already published counts as re-driven;
* any other stream of ours (a canonical stream's poison entry, a webhook
  job) gets the payload appended again as ``__data__``, after a canonical
  stream's payload was checked to be a CloudEvent; its consumers are idempotent.

The entry is deleted from the dead-letter stream only after the re-drive
succeeded; one still invalid stays, and :class:`StillInvalid` says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from schemas.events import CloudEvent
from schemas.topology import Topology
from services.core import streams
from services.core.alert_register import AlertRegister
from services.core.bus import RedisPublisher
from services.core.config import Principal
from services.core.keyring import Registry
from services.ingest.adapters import ADAPTERS
from services.ingest.adapters.base import Record, RowInvalid
from services.ingest.importer import IMPORT_ORIGIN, check_record
from services.ingest.ingress import NotAnEvent, event_of
from services.ingest.intake import foreign_changes


class NotFound(LookupError):
    """No dead letter has this id."""


class StillInvalid(ValueError):
    """The entry cannot be re-driven yet; it stays on the dead-letter stream."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One entry of the dead-letter stream."""

    id: str
    origin: str
    entry_id: str
    reason: str
    at: str
    payload: bytes

    def to_dict(self) -> dict[str, str]:
        """JSON-ready, the payload as text."""
        return {
            "id": self.id,
            "origin": self.origin,
            "entry_id": self.entry_id,
            "reason": self.reason,
            "at": self.at,
            "payload": self.payload.decode(errors="backslashreplace"),
        }


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _dead_letter(entry_id: bytes | str, fields: dict[bytes, bytes]) -> DeadLetter:
    def get(name: str) -> str:
        return _text(fields.get(name.encode(), b""))

    return DeadLetter(
        _text(entry_id),
        get("origin"),
        get("entry_id"),
        get("reason"),
        get("at"),
        fields.get(b"payload", b""),
    )


async def list_dead_letters(redis: Redis, limit: int | None = None) -> list[DeadLetter]:
    """The oldest ``limit`` entries (all when None), oldest first."""
    entries: Any = await redis.xrange(streams.DEAD_LETTERS, count=limit)
    return [_dead_letter(eid, fields) for eid, fields in entries]


async def count(redis: Redis) -> int:
    """How many entries the dead-letter stream holds."""
    return int(await redis.xlen(streams.DEAD_LETTERS))


async def get(redis: Redis, entry_id: str) -> DeadLetter:
    """One entry by id, or :class:`NotFound`."""
    try:
        entries: Any = await redis.xrange(streams.DEAD_LETTERS, entry_id, entry_id)
    except ResponseError as exc:  # a malformed id
        raise NotFound(f"{entry_id!r} is not a stream entry id: {exc}") from None
    if not entries:
        raise NotFound(f"no dead letter {entry_id}")
    return _dead_letter(*entries[0])


async def retry(
    redis: Redis, entry_id: str, topology: Topology, principals: Sequence[Principal] = ()
) -> str:
    """Re-drive one entry and delete it; what was done, or :class:`StillInvalid` / :class:`NotFound`.

    An ingress entry is checked against its publisher's units: ``principals`` (the
    configuration's) must name that publisher.
    """
    letter = await get(redis, entry_id)
    done = await _redrive(redis, letter, topology, principals)
    await redis.xdel(streams.DEAD_LETTERS, letter.id)
    return done


async def _redrive(
    redis: Redis, letter: DeadLetter, topology: Topology, principals: Sequence[Principal]
) -> str:
    ingress = streams.publisher_of_ingress(letter.origin)
    if ingress is not None or letter.origin.startswith(IMPORT_ORIGIN):
        event = _event(letter, topology, principals)
        for rejection in await foreign_changes([event], AlertRegister(redis), batch=False):
            raise StillInvalid(f"{rejection.field}: {rejection.message}")
        [new] = await RedisPublisher(redis).publish([event])
        verb = "published" if new else "was already published:"
        return f"{verb} {event.type} {event.id} from {event.source}"
    if not letter.origin.startswith(f"{streams.PREFIX}:stream:") or (
        letter.origin == streams.DEAD_LETTERS
    ):
        raise StillInvalid(f"origin {letter.origin!r} is not a stream it can go back to")
    if letter.origin in streams.CANONICAL_STREAMS:
        try:
            CloudEvent.from_json(letter.payload)
        except ValidationError as exc:
            raise StillInvalid(f"not a CloudEvent: {_errors(exc)}") from None
    new_id = await redis.xadd(letter.origin, {streams.EVENT_FIELD: letter.payload})
    return f"appended to {letter.origin} as {_text(new_id)}"


def _event(letter: DeadLetter, topology: Topology, principals: Sequence[Principal]) -> CloudEvent:
    publisher = streams.publisher_of_ingress(letter.origin)
    if publisher is not None:
        agency = next((p for p in principals if p.name == publisher and p.units), None)
        if agency is None:
            raise StillInvalid(f"no publisher {publisher!r} in the configuration: whose units?")
        try:
            return event_of(letter.payload, topology, agency, Registry.of_principals(principals))
        except NotAnEvent as exc:
            raise StillInvalid(str(exc)) from None
    name = letter.origin.removeprefix(IMPORT_ORIGIN)
    adapter = ADAPTERS.get(name)
    if adapter is None:
        raise StillInvalid(f"no adapter {name!r} to read the row with")
    try:
        raw = adapter.load(_text(letter.payload))
        return check_record(adapter, Record(0, raw), topology, Registry.of_principals(principals))
    except RowInvalid as exc:
        raise StillInvalid(str(exc)) from None


def _errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '(event)'}: {e['msg']}" for e in exc.errors()[:5]
    )
