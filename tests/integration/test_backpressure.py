"""Back-pressure (issue 21): a stopped ledger and a steady publisher.

Ingest and the notifier run; the ledger does not. The publisher publishes batches steadily:
once the ledger's backlog passes ``BACKLOG_HIGH`` ingest answers 503 with ``Retry-After``
(readiness names ``intake``), so the streams stop growing however long it keeps trying.
Then the ledger starts: everything that was accepted drains into it, nothing is lost, and
once the backlog is at or below ``BACKLOG_LOW`` the publisher is accepted again, with no
operator.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from services.bootstrap import Runtime
from services.core import streams
from services.core.auth import token_digest
from services.core.settings import Settings
from services.entrypoints.http import create_app
from services.ingest.backpressure import Reading, WaterMarks, read_server, why_closed
from tests import factories
from tests.integration.conftest import TOKENS, auth, eventually, principals_config

pytestmark = pytest.mark.integration

HIGH, LOW, BATCH = 300, 100, 50


def _settings(redis_url: str, data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        redis_url=redis_url,
        database_url=None,
        config=None,
        metrics_token_sha256=token_digest(TOKENS["metrics"]),
        backlog_high=HIGH,
        backlog_low=LOW,
    )


async def test_a_stopped_ledger_closes_the_intake_and_its_restart_opens_it(
    redis_url: str, data_dir: Path
) -> None:
    settings = _settings(redis_url, data_dir)
    numbers = itertools.count()
    accepted: set[str] = set()
    redis = Redis.from_url(redis_url)

    async def publish(api: httpx.AsyncClient) -> httpx.Response:
        batch = [factories.seizure("IMT-GULISTAN", id=f"BP-{next(numbers)}") for _ in range(BATCH)]
        response = await api.post("/v1/events", json=batch, headers=auth("mia"))
        if response.status_code == 202:
            accepted.update(response.json()["accepted"])
        return response

    try:
        async with Runtime(settings, principals_config(), services=("ingest", "notifier")) as up:
            transport = httpx.ASGITransport(app=create_app(up.deps()))
            async with httpx.AsyncClient(transport=transport, base_url="http://liaison") as api:
                refused, held = [], set()
                for _ in range(40):  # a steady publisher, well past the high-water mark
                    response = await publish(api)
                    if response.status_code == 503:
                        refused.append(response)
                        held.add(await redis.xlen(streams.SEIZURES))
                assert len(accepted) >= HIGH
                assert len(refused) >= 20, "the intake never closed"
                first = refused[0]
                assert first.headers["content-type"] == "application/problem+json"
                assert int(first.headers["retry-after"]) >= 1
                assert "not yet handled by the ledger or the notifier" in first.json()["detail"]
                # bounded: what was accepted before the mark was seen, never the 2,000 sent
                behind = (await read_server(redis)).backlog
                assert behind <= HIGH + BATCH
                assert await redis.xlen(streams.SEIZURES) <= HIGH + BATCH
                assert len(held) == 1, "the stream grew while the publisher was refused"
                ready = await api.get("/readyz", headers=auth("metrics"))
                assert ready.status_code == 503
                assert ready.json()["checks"]["intake"] is False

                # the ledger comes back: everything accepted drains into it, then the intake opens
                async with Runtime(settings, principals_config(), services=("ledger",)) as ledger:

                    async def drained() -> bool:
                        return await ledger.ledger.count() == len(accepted)

                    await eventually(drained, timeout=60)
                    recorded = {entry.event["id"] async for entry in ledger.ledger.entries()}
                    assert recorded == accepted  # nothing accepted lost, nothing refused kept

                    async def open_again() -> bool:
                        return (await publish(api)).status_code == 202

                    await eventually(open_again, timeout=30)
                    ready = await api.get("/readyz", headers=auth("metrics"))
                    assert ready.json()["checks"]["intake"] is True
    finally:
        await redis.aclose()


MARKS = WaterMarks(backlog_high=100, backlog_low=50, memory_high=0.8, memory_low=0.7)


def test_the_intake_closes_at_a_high_mark_and_opens_at_a_low_one() -> None:
    def reason(backlog: int, used: int = 0, closed: bool = False) -> str | None:
        return why_closed(Reading(backlog, used, 1000 if used else 0), MARKS, closed)

    assert reason(99) is None
    assert reason(100) == "100 events not yet handled by the ledger or the notifier"
    assert reason(70, closed=True) is not None  # between the marks: stays closed
    assert reason(50, closed=True) is None
    assert reason(70) is None  # between the marks: stays open
    assert reason(0, used=800) == "the server uses 80% of its maxmemory"
    assert reason(0, used=750, closed=True) is not None
    assert reason(0, used=700, closed=True) is None
    assert why_closed(Reading(0, 10**9, 0), MARKS, False) is None  # no maxmemory: no share
    full_disk = why_closed(Reading(0, 0, 0, persisting=False), MARKS, False)
    assert full_disk == "the server cannot write its append-only file (is its volume full?)"
