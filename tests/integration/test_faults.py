"""Fault injection under a steady load: nothing acknowledged is lost or doubled.

Each test runs the API, the ledger and the notifier as separate ``liaison serve`` processes on
a server of its own, publishes 10,000 events over HTTP at a steady rate
(one in ten an alert to four units) and, while that runs, breaks one thing:
it SIGKILLs each service at a random moment, or the server, or takes the
database away. Nobody steps in: the services and the publisher's retries
must recover by themselves. Afterwards every acknowledged event is in the
ledger exactly once, every delivery is in its unit's inbox and recorded
exactly once, the chain verifies, nothing is dead-lettered — and readiness
was red while the thing was broken and is green again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis

from bench.support.pg import PostgresCluster, PostgresUnavailable, create_database
from services.core import streams
from services.core.settings import Settings
from services.ledger.engine import create_engine
from services.ledger.store import SqlLedger
from tests.integration.fault_deployment import SERVICES, Deployment, ReadinessLog
from tests.integration.fault_load import (
    Expected,
    Load,
    delivered_notices,
    inboxes,
    make_events,
    recorded,
    settled,
)
from tests.integration.ledger_backends import no_postgres
from tests.integration.processes import wait_for

pytestmark = pytest.mark.slow  # each runs processes under load for ten seconds or more

TOTAL = 10_000
RATE = 1_000.0
"""Events per second: the load lasts ten seconds, long enough to break things during it."""
SEED = int(os.environ.get("FAULTS_SEED") or random.randrange(1 << 32))
"""The random moments' seed: printed before each test runs (so a failure shows it);
``FAULTS_SEED=N`` replays it."""

Fault = Callable[[Deployment, Load, ReadinessLog], Awaitable[None]]


@pytest.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[Deployment]:
    """Standard durability, SQLite; torn down whatever happens."""
    running = Deployment(tmp_path)
    try:
        yield running
    finally:
        running.close()


async def run_load_with(deployment: Deployment, fault: Fault) -> ReadinessLog:
    """Start everything, publish the load, inject ``fault`` meanwhile, check the outcome."""
    print(f"\nseed {SEED} (FAULTS_SEED={SEED} replays it)")
    await deployment.start_all()
    events = make_events(TOTAL)
    expected = Expected.of(events)
    load = Load(deployment.url("api"), events, RATE)
    readiness = ReadinessLog(deployment)
    database = deployment.database_url or Settings(data_dir=deployment.root / "var").sqlite_url
    redis = Redis.from_url(deployment.server.url)
    try:
        with readiness.polling():
            publishing = asyncio.create_task(load.run())
            await fault(deployment, load, readiness)
            await wait_for(lambda: load.done.is_set() or publishing.done(), "load published",
                           deployment.processes, 120)  # fmt: skip
            publishing.result()  # its assertion, if it failed
            await wait_for(lambda: settled(redis, database, expected), "everything settled",
                           deployment.processes, 120)  # fmt: skip
            for service in SERVICES:
                await deployment.wait_ready(service)
        await check_outcome(redis, database, expected, load)
    finally:
        await redis.aclose()
    print(f"publisher retries: {dict(load.failures)}")
    return readiness


async def check_outcome(redis: Redis, database: str, expected: Expected, load: Load) -> None:
    """Exactly once everywhere, a verified chain, no dead letters."""
    assert load.acknowledged == {event_id for _, event_id in expected.events}
    found = await recorded(database)
    published = Counter({key: n for key, n in found.counts.items() if key in expected.events})
    assert published == Counter(dict.fromkeys(expected.events, 1)), "an event lost or doubled"
    assert found.delivered == Counter(dict.fromkeys(expected.deliveries, 1)), "receipts"
    units = {unit for _, unit in expected.deliveries}
    assert await inboxes(redis, units) == expected.deliveries
    notices = await delivered_notices(redis, units)
    assert notices == Counter(dict.fromkeys(expected.deliveries, 1)), "a delivery made twice"
    ledger = SqlLedger(create_engine(database))
    try:
        report = await ledger.verify()
    finally:
        await ledger.close()
    assert report.ok, report
    assert await redis.xlen(streams.DEAD_LETTERS) == 0


def _never_unready(readiness: ReadinessLog, service: str, since: float, until: float) -> bool:
    """Ready whenever it answered (at least once), and never down: the database is the
    ledger's, not this service's. A probe it was too busy to answer in time is no verdict."""
    seen = readiness.seen(service, since, until)
    return "ready" in seen and not seen & {"not ready", "down"}


async def until_sent(load: Load, fraction: float) -> None:
    """Until the publisher got that far through the load."""
    while load.sent < fraction * TOTAL and not load.done.is_set():
        await asyncio.sleep(0.01)


async def until_seen(readiness: ReadinessLog, service: str, state: str, since: float) -> None:
    """Until the readiness log saw ``service`` in ``state`` after ``since``."""
    async with asyncio.timeout(30):
        while state not in readiness.seen(service, since):
            await asyncio.sleep(0.02)


@pytest.mark.timeout(240)
async def test_each_service_sigkilled_at_a_random_moment(deployment: Deployment) -> None:
    rng = random.Random(SEED)
    order = rng.sample(SERVICES, len(SERVICES))
    outages: list[tuple[str, float, float]] = []

    async def kill_each(deployment: Deployment, load: Load, readiness: ReadinessLog) -> None:
        for i, service in enumerate(order):
            await until_sent(load, (i + rng.random()) / (len(order) + 1))
            deployment.kill(service)
            killed = time.monotonic()
            await until_seen(readiness, service, "down", killed)
            deployment.start(service)
            await deployment.wait_ready(service, timeout=60)
            outages.append((service, killed, time.monotonic()))

    readiness = await run_load_with(deployment, kill_each)
    assert [service for service, _, _ in outages] == order
    for service, killed, _ in outages:
        assert readiness.last(service) == "ready"
        assert "down" in readiness.seen(service, killed)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("durability", ["standard", "strict"])
async def test_server_sigkilled_and_restarted_from_its_aof(tmp_path: Path, durability: str) -> None:
    deployment = Deployment(tmp_path, durability=durability)
    moments: dict[str, float] = {}

    async def kill_server(deployment: Deployment, load: Load, readiness: ReadinessLog) -> None:
        await until_sent(load, 0.3 + 0.3 * random.Random(SEED).random())
        deployment.server.kill()
        moments["killed"] = time.monotonic()
        for service in SERVICES:
            await until_seen(readiness, service, "not ready", moments["killed"])
        deployment.server.start()
        moments["restarted"] = time.monotonic()

    try:
        readiness = await run_load_with(deployment, kill_server)
    finally:
        deployment.close()
    for service in SERVICES:
        assert readiness.last(service) == "ready"
        assert "ready" in readiness.seen(service, moments["restarted"])


@pytest.mark.timeout(240)
async def test_sqlite_locked_for_a_while(deployment: Deployment) -> None:
    path = deployment.root / "var" / "ledger.sqlite3"
    moments: dict[str, float] = {}

    async def lock_database(deployment: Deployment, load: Load, readiness: ReadinessLog) -> None:
        await until_sent(load, 0.3)
        locker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            await asyncio.to_thread(locker.execute, "BEGIN IMMEDIATE")  # the write lock
            moments["locked"] = time.monotonic()
            await until_seen(readiness, "ledger", "not ready", moments["locked"])
            await asyncio.sleep(1.0)  # the ledger stays blocked a while longer
        finally:
            locker.execute("ROLLBACK")
            locker.close()
            moments["released"] = time.monotonic()

    readiness = await run_load_with(deployment, lock_database)
    assert "ready" in readiness.seen("ledger", moments["released"])
    assert _never_unready(readiness, "api", moments["locked"], moments["released"])


@pytest.mark.timeout(300)
async def test_postgresql_stopped_for_a_while(tmp_path: Path) -> None:
    try:
        cluster = PostgresCluster(fsync=False)
    except PostgresUnavailable as exc:
        no_postgres(exc)
    cluster.start()
    deployment = Deployment(tmp_path, database_url=await create_database(cluster.url, "faults"))
    moments: dict[str, float] = {}

    async def stop_database(deployment: Deployment, load: Load, readiness: ReadinessLog) -> None:
        await until_sent(load, 0.3)
        await asyncio.to_thread(cluster.stop)
        moments["stopped"] = time.monotonic()
        await until_seen(readiness, "ledger", "not ready", moments["stopped"])
        await asyncio.sleep(1.0)
        await asyncio.to_thread(cluster.start)
        moments["started"] = time.monotonic()

    try:
        readiness = await run_load_with(deployment, stop_database)
    finally:
        deployment.close()
        with contextlib.suppress(RuntimeError):  # stopped already, if the test failed meanwhile
            cluster.stop()
        cluster.remove()
    assert "ready" in readiness.seen("ledger", moments["started"])
    assert _never_unready(readiness, "api", moments["stopped"], moments["started"])
