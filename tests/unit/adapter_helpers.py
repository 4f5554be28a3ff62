"""Running an adapter over a file's text, as ``liaison import`` would (no I/O)."""

from __future__ import annotations

import io

from schemas.events import CloudEvent
from schemas.topology import default_topology
from services.ingest.adapters import ADAPTERS
from services.ingest.adapters.base import RowInvalid
from services.ingest.importer import checked


def convert(adapter: str, content: str | bytes) -> dict[int, CloudEvent | dict[str, str]]:
    """Row number → its canonical event, or its errors as ``{field: reason}``."""
    data = content.encode() if isinstance(content, str) else content
    out: dict[int, CloudEvent | dict[str, str]] = {}
    for record, outcome in checked(ADAPTERS[adapter], io.BytesIO(data), default_topology()):
        if isinstance(outcome, RowInvalid):
            out[record.row] = dict(outcome.errors)
        else:
            out[record.row] = outcome
    return out


def event(outcome: CloudEvent | dict[str, str]) -> CloudEvent:
    """The outcome, which must be an event."""
    assert isinstance(outcome, CloudEvent), outcome
    return outcome


def errors(outcome: CloudEvent | dict[str, str]) -> dict[str, str]:
    """The outcome, which must be a rejection."""
    assert isinstance(outcome, dict), outcome
    return outcome
