"""What the ledger keeps of one event: the columns it indexes and the canonical stored text.

Ingest validates every event in full and publishes it in canonical form
(:meth:`CloudEvent.to_json`). The ledger, the one serial writer of the
chain, does not repeat that work per event: of a payload that starts like
canonical text (``{"data":{`` — ``data`` sorts before every other
attribute) it validates only the envelope it indexes and stores the
published text verbatim. Anything else (not written by Liaison Exchange,
or by an older version) is validated in full and re-serialised, so the
stored text is canonical either way.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal, NamedTuple

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, Strict, StringConstraints

from schemas.alerts import REF_MAX, REF_PATTERN, SYSTEM_ID_MAX
from schemas.events import SOURCE_PATTERN, CloudEvent
from schemas.vocabulary import EventType

CANONICAL_PREFIX = b'{"data":{'
"""How canonical event text starts: keys sorted, compact, ``data`` an object."""


def utc_text(moment: datetime) -> str:
    """RFC 3339 UTC with microseconds and ``Z``: sorts as text in time order."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"  # "+00:00" off


_Ref = Annotated[str, StringConstraints(min_length=1, max_length=REF_MAX, pattern=REF_PATTERN)]
# The system's ids embed an alert's id, its origin and a unit (schemas.events.EventId).
_Id = Annotated[str, StringConstraints(min_length=1, max_length=SYSTEM_ID_MAX, pattern=REF_PATTERN)]


class Envelope(BaseModel):
    """The CloudEvent attributes the ledger indexes, checked by the same rules as
    :class:`CloudEvent` (without its Python-level validators, which only word errors)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    specversion: Literal["1.0"]
    id: _Id
    source: str = Field(pattern=SOURCE_PATTERN)
    type: EventType
    time: Annotated[AwareDatetime, Strict()]  # an RFC 3339 string with a timezone
    subject: _Ref | None = None


class Record(NamedTuple):
    """One event as the ledger stores it, before it has a place in the chain."""

    source: str
    event_id: str
    type: str
    subject: str | None
    event_time: str
    text: str
    """The canonical JSON (see :mod:`services.ledger.chain`)."""


def record_of_event(event: CloudEvent) -> Record:
    """The record of a validated event (its canonical text serialised here)."""
    return Record(
        event.source,
        event.id,
        event.type.value,
        event.subject,
        utc_text(event.time),
        event.to_json().decode(),
    )


def record_of_payload(payload: bytes) -> Record:
    """The record of a stream entry's JSON; pydantic ``ValidationError`` if it is no event."""
    if not payload.startswith(CANONICAL_PREFIX):
        return record_of_event(CloudEvent.from_json(payload))
    env = Envelope.model_validate_json(payload)
    return Record(
        env.source, env.id, env.type.value, env.subject, utc_text(env.time), payload.decode()
    )
