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

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.alerts import Ref, Timestamp
from schemas.events import SOURCE_PATTERN, CloudEvent
from schemas.vocabulary import EventType

CANONICAL_PREFIX = b'{"data":{'
"""How canonical event text starts: keys sorted, compact, ``data`` an object."""


def utc_text(moment: datetime) -> str:
    """RFC 3339 UTC with microseconds and ``Z``: sorts as text in time order."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"  # "+00:00" off


class Envelope(BaseModel):
    """The CloudEvent attributes the ledger indexes, validated as :class:`CloudEvent` does."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    specversion: Literal["1.0"]
    id: Ref
    source: str = Field(pattern=SOURCE_PATTERN)
    type: EventType
    time: Timestamp
    subject: Ref | None = None


@dataclass(frozen=True, slots=True)
class Record:
    """One event as the ledger stores it, before it has a place in the chain."""

    source: str
    event_id: str
    type: str
    subject: str | None
    event_time: str
    text: str
    """The canonical JSON (see :mod:`services.ledger.chain`)."""

    @classmethod
    def of_event(cls, event: CloudEvent) -> Record:
        """The record of a validated event (its canonical text serialised here)."""
        return cls(event.source, event.id, str(event.type), event.subject,
                   utc_text(event.time), event.to_json().decode())  # fmt: skip

    @classmethod
    def of_payload(cls, payload: bytes) -> Record:
        """The record of a stream entry's JSON; pydantic ``ValidationError`` if it is no event."""
        if not payload.startswith(CANONICAL_PREFIX):
            return cls.of_event(CloudEvent.from_json(payload))
        env = Envelope.model_validate_json(payload)
        return cls(env.source, env.id, str(env.type), env.subject, utc_text(env.time),
                   payload.decode())  # fmt: skip
