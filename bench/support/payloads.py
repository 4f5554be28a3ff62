"""Realistic ``seizure.reported`` CloudEvents, as the ledger receives them."""

from __future__ import annotations

import gc
import json
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from schemas.events import CloudEvent
from services.ledger.chain import event_json

UNITS = ("IMT-GULISTAN", "IMT-TERMEZ", "BLO-OYBEK", "BLO-AYRITOM", "IMT-FERGHANA", "BLO-DUSTLIK")
_DRUGS = (("heroin", "g"), ("hashish", "kg"), ("opium", "kg"), ("tramadol", "tablets"))


@dataclass(frozen=True, slots=True)
class Payloads:
    """N validated events: the models, their wire JSON and their canonical stored text."""

    events: list[CloudEvent]
    wire: list[bytes]
    stored: list[str]

    @property
    def mean_wire_bytes(self) -> int:
        """Average size of one stream entry's JSON."""
        return sum(map(len, self.wire)) // max(len(self.wire), 1)


def seizure(i: int, now: datetime) -> dict[str, object]:
    """The i-th event: like ``tests.factories.seizure``, varied in unit, drug and amount."""
    unit = UNITS[i % len(UNITS)]
    substance, measure = _DRUGS[i % len(_DRUGS)]
    at = (now - timedelta(minutes=i)).isoformat()
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": f"/units/{unit}",
        "type": "seizure.reported",
        "time": at,
        "subject": f"CASE-{i // 10:06d}",
        "data": {
            "occurred_at": at,
            "drugs": [{"substance": substance, "quantity": 1000 + i % 20_000, "measure": measure}],
            "agencies": ["MIA", "SSS", "SCC"],
            "location": {"unit": unit, "region": "Syrdarya", "bcp": "Oybek"},
            "route": ["AF", "TJ", "UZ", "KZ"],
            "transport": "truck",
            "concealment": "hidden compartment in a KAMAZ fuel tank",
            "detained": 2,
            "persons": [{"name": "Example Driver", "nationality": "TJ", "document": "P-0000"}],
        },
    }


def build(n: int) -> Payloads:
    """N validated events (the JSON round-trips through :class:`CloudEvent`)."""
    now = datetime.now(UTC)
    events = [CloudEvent.model_validate_json(json.dumps(seizure(i, now))) for i in range(n)]
    return Payloads(events, [ev.to_json() for ev in events], [event_json(ev) for ev in events])


_BATCH_MARK = b"BATCHNUM"


def bodies(batches: Iterable[int], size: int = 1000) -> Iterator[bytes]:
    """JSON arrays of ``size`` events, one per batch number, made lazily from one template.

    Each event's id is ``<batch, 8 hex>-0000-4000-8000-<index, 12 hex>``: unique
    across batch numbers, so a million events cost the sender one
    ``bytes.replace`` per request and never sit in memory at once.
    """
    now = datetime.now(UTC)
    events = []
    for i in range(size):
        event = seizure(i, now)
        event["id"] = f"{_BATCH_MARK.decode()}-0000-4000-8000-{i:012x}"
        events.append(event)
    template = json.dumps(events, separators=(",", ":")).encode()
    for batch in batches:
        yield template.replace(_BATCH_MARK, b"%08x" % batch)


@contextmanager
def out_of_gc() -> Iterator[None]:
    """Exempt every object alive now (the harness's own events) from full collections.

    A benchmark holds N events alive that the ledger process never would;
    rescanning them made a random half of the runs ~10 µs per event slower.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
