"""A steady publisher over HTTP that never gives up, and what must hold once it is done.

The publisher POSTs batches at a steady rate and re-sends a batch until it
gets its 202 (publishing is idempotent by ``(source, id)``), so every event
ends up acknowledged; what it counts as acknowledged is only what a 202 said.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
from redis.asyncio import Redis
from sqlalchemy import select

from schemas.events import CloudEvent
from schemas.topology import default_topology
from services.core import streams
from services.ledger import tables
from services.ledger.engine import create_engine
from services.ledger.store import SqlLedger
from services.notifier.handlers import facts_of
from services.notifier.routing import route_alert
from tests import factories
from tests.integration.fault_deployment import TOKEN, UNITS

BATCH = 50
ALERT_EVERY = 10
"""One event in ten is an alert (to four units); the rest are seizure reports."""
BATCH_MEDIA_TYPE = "application/cloudevents-batch+json"


def make_events(total: int) -> list[dict[str, object]]:
    """``total`` valid events from the load's units, one alert in ``ALERT_EVERY``."""
    return [
        factories.alert(UNITS[0]) if i % ALERT_EVERY == 0 else factories.seizure(UNITS[1])
        for i in range(total)
    ]


@dataclass
class Load:
    """Publishes ``events`` to ``url`` at ``rate`` events/s, retrying each batch until 202."""

    url: str
    events: list[dict[str, object]]
    rate: float
    acknowledged: set[str] = field(default_factory=set)
    failures: Counter[str] = field(default_factory=Counter)
    sent: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        """Until every event was acknowledged."""
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": BATCH_MEDIA_TYPE}
        start = time.monotonic()
        async with httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10) as client:
            for first in range(0, len(self.events), BATCH):
                delay = start + first / self.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await self._publish(client, self.events[first : first + BATCH])
                self.sent = first + BATCH
        self.done.set()

    async def _publish(self, client: httpx.AsyncClient, batch: list[dict[str, object]]) -> None:
        body = json.dumps(batch)
        while True:
            try:
                response = await client.post("/v1/events", content=body)
            except httpx.HTTPError as exc:
                self.failures[type(exc).__name__] += 1
            else:
                if response.status_code == 202:
                    doc = response.json()
                    self.acknowledged.update(doc["accepted"], doc["duplicates"])
                    return
                # An outage is a 503 telling when to come back (docs/guarantees.md), never a
                # 500: anything else fails the load, and the test with it.
                assert response.status_code == 503, response.text
                assert response.headers.get("retry-after") == "1", response.headers
                self.failures[str(response.status_code)] += 1
            await asyncio.sleep(0.05)


@dataclass(frozen=True)
class Expected:
    """What the ledger and the inboxes must hold once everything settled."""

    events: dict[tuple[str, str], str]
    """``(source, id)`` → type, of every event published."""
    deliveries: set[tuple[str, str]]
    """``(alert id, unit)`` of every delivery routing asks for."""

    @classmethod
    def of(cls, events: list[dict[str, object]]) -> Expected:
        """Routed with the default topology, as the notifier routes them."""
        topology, deliveries = default_topology(), set()
        for raw in events:
            if raw["type"] == "alert.raised":
                alert = CloudEvent.model_validate(raw)
                deliveries |= {(alert.id, r.unit) for r in route_alert(facts_of(alert), topology)}
        return cls({(str(e["source"]), str(e["id"])): str(e["type"]) for e in events}, deliveries)


@dataclass
class Recorded:
    """What the ledger holds: every ``(source, id)`` with its count, and the receipts."""

    counts: Counter[tuple[str, str]]
    delivered: Counter[tuple[str, str]]
    """``(alert id, unit)`` → ``alert.delivered`` entries."""


async def recorded(database_url: str) -> Recorded:
    """Read the ledger back (its own engine: the test process is another reader)."""
    ledger = SqlLedger(create_engine(database_url))
    t = tables.entries
    try:
        async with ledger.engine.connect() as conn:
            rows = (await conn.execute(select(t.c.source, t.c.event_id, t.c.type, t.c.event))).all()
    finally:
        await ledger.close()
    delivered: Counter[tuple[str, str]] = Counter()
    for row in rows:
        if row.type == "alert.delivered":
            data = json.loads(row.event)["data"]
            delivered[(data["alert_id"], data["recipient"])] += 1
    return Recorded(Counter((r.source, r.event_id) for r in rows), delivered)


async def settled(redis: Redis, database_url: str, expected: Expected) -> bool:
    """Every stream read and acknowledged by every group, every delivery recorded."""
    for stream, groups in streams.GROUPS.items():
        for group in await redis.xinfo_groups(stream):
            if group["name"].decode() in groups and (group["pending"] or group["lag"]):
                return False
    found = await recorded(database_url)
    return set(found.delivered) == expected.deliveries and all(
        key in found.counts for key in expected.events
    )


async def inboxes(redis: Redis, units: set[str]) -> set[tuple[str, str]]:
    """``(alert id, unit)`` of every inbox entry of these units (fields: ``<origin>/<id>``)."""
    found = set()
    for unit in units:
        keys = await redis.hkeys(streams.inbox_key(unit))
        found |= {(k.decode().partition("/")[2], unit) for k in keys}
    return found


async def delivered_notices(redis: Redis, units: set[str]) -> Counter[tuple[str, str]]:
    """``(alert id, unit)`` → "delivered" notifications in the unit's live feed: written once,
    when the inbox entry is created, so a delivery made twice shows here as a count of 2
    (the inbox itself is a hash: a second write would leave no trace in it)."""
    found: Counter[tuple[str, str]] = Counter()
    for unit in units:
        for _, fields in await redis.xrange(streams.feed_key(unit)):
            if fields[b"kind"] == b"delivered":
                found[(fields[b"alert_id"].decode(), unit)] += 1
    return found
