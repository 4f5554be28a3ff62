"""What the fan-out benchmark publishes and how it sees deliveries land.

Deliveries are observed on the units' feed streams (``XREAD BLOCK`` over all
of them, on a connection of its own): the notifier appends ``delivered`` to a
unit's feed right after that unit's inbox write returned, so the moment the
watcher reads it is an upper bound of the inbox write, late by at most one
server push and the watcher's own parsing.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from schemas.events import CloudEvent
from schemas.topology import Topology
from services.core import streams
from services.notifier.handlers import facts_of
from services.notifier.routing import route_alert

ORIGIN = "BLO-OYBEK"
EXPLICIT = "BLO-AYRITOM"


def alerts(n: int, topology: Topology) -> tuple[list[CloudEvent], dict[str, set[str]]]:
    """``n`` alerts of the design's example plus one explicit recipient: five recipients each.

    Returns the alerts and, per alert id, the units routing says must receive it.
    """
    events = [CloudEvent.model_validate(_alert()) for _ in range(n)]
    recipients = {e.id: {r.unit for r in route_alert(facts_of(e), topology)} for e in events}
    return events, recipients


def _alert() -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": f"/units/{ORIGIN}",
        "type": "alert.raised",
        "time": datetime.now(UTC).isoformat(),
        "releasableto": "UZ,TJ",
        "data": {
            "severity": "urgent",
            "summary": "KAMAZ truck suspected of carrying heroin",
            "route": ["TJ", "UZ", "KZ"],
            "recipients": [EXPLICIT],
            "persons": [{"name": "Example Driver", "nationality": "TJ", "document": "P-0000"}],
        },
    }


@dataclass
class Watcher:
    """Follows every unit's feed; records when each alert's last delivery was seen."""

    redis: Redis
    units: Sequence[str]
    expected: dict[str, int] = field(default_factory=dict)
    """Alert id → recipients still to see (filled in before publishing)."""
    completed: dict[str, float] = field(default_factory=dict)
    """Alert id → ``perf_counter()`` when its last recipient's delivery was seen."""
    seen_at: list[float] = field(default_factory=list)
    """``perf_counter()`` of every delivery seen, in order."""
    duplicates: int = 0
    stopped: bool = False
    """Set to stop :meth:`run` (redis-py may swallow the cancellation of a blocked read)."""

    async def run(self) -> None:
        """Read the feeds until :attr:`stopped`."""
        last = {streams.feed_key(unit): "0-0" for unit in self.units}
        delivered = set()
        while not self.stopped:
            reply: Any = await self.redis.xread(last, block=100, count=1000)  # type: ignore[arg-type]
            now = time.perf_counter()
            for key, entries in reply or ():
                last[key.decode()] = entries[-1][0].decode()
                for _, fields in entries:
                    if fields[b"kind"] != b"delivered":
                        continue
                    pair = (key, fields[b"alert_id"])
                    if pair in delivered:
                        self.duplicates += 1
                        continue
                    delivered.add(pair)
                    self.seen_at.append(now)
                    self._count(fields[b"alert_id"].decode(), now)

    def _count(self, alert_id: str, now: float) -> None:
        left = self.expected.get(alert_id, 0) - 1
        self.expected[alert_id] = left
        if left == 0:
            self.completed[alert_id] = now

    def expect(self, recipients: dict[str, set[str]]) -> None:
        """Announce alerts about to be published (before publishing them)."""
        self.expected.update({alert: len(units) for alert, units in recipients.items()})

    async def until_complete(self, ids: Sequence[str], timeout: float) -> None:
        """Wait until every one of ``ids`` reached all its recipients."""
        async with asyncio.timeout(timeout):
            while not all(i in self.completed for i in ids):
                await asyncio.sleep(0.005)
