"""Valkey with replicas and Sentinels: the services follow a failover, and ``replicated``
durability acknowledges only what every replica holds.

A real primary, two replicas and three Sentinels on loopback ports (``sentinel_cluster``);
the services configured with ``LIAISON_REDIS_SENTINELS`` only. Partitions and hung hosts
need network namespaces: ``tests/failover``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from redis.asyncio import Redis

from services.bootstrap import Runtime
from services.core import streams
from services.core.redis_server import EmbeddedRedis, free_port
from services.core.settings import Settings
from services.entrypoints.http import create_app
from services.notifier.webhook_outcomes import RedisWebhookOutcomes
from services.notifier.webhooks import WebhookWorker, WorkerOptions
from tests import factories
from tests.e2e.test_cli import LIAISON
from tests.integration.conftest import auth, eventually, principals_config
from tests.integration.sentinel_cluster import SentinelCluster

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[SentinelCluster]:
    """A primary, two replicas and three Sentinels of this test's own."""
    nodes = SentinelCluster(tmp_path / "cluster")
    try:
        yield nodes.start()
    finally:
        nodes.stop()


@contextlib.asynccontextmanager
async def _liaison(
    cluster: SentinelCluster, data_dir: Path, **extra: Any
) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    settings = Settings(data_dir=data_dir, redis_sentinels=cluster.sentinels_setting, **extra)
    async with Runtime(settings, principals_config()) as runtime:
        transport = httpx.ASGITransport(app=create_app(runtime.deps()))
        async with httpx.AsyncClient(transport=transport, base_url="http://liaison") as api:
            yield runtime, api


async def _publish(api: httpx.AsyncClient, event: dict[str, Any]) -> httpx.Response:
    """One publish; a failover may answer 503 (with Retry-After), never anything else."""
    response = await api.post("/v1/events", json=event, headers=auth("mia"))
    assert response.status_code in (202, 503), response.text
    if response.status_code == 503:
        assert response.headers["retry-after"] == "1"
    return response


async def _until_accepted(api: httpx.AsyncClient, event: dict[str, Any]) -> None:
    async def accepted() -> bool:
        return (await _publish(api, event)).status_code == 202

    await eventually(accepted, timeout=30)


def _ledger_ids(data_dir: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(data_dir / "ledger.sqlite3", timeout=5)) as db:
        return [str(row[0]) for row in db.execute("SELECT event_id FROM ledger_entries")]


async def test_the_services_follow_a_primary_failover_without_a_restart(
    cluster: SentinelCluster, data_dir: Path
) -> None:
    """SIGKILL of the primary under a steady publish: every publish is answered 202 or 503
    (never 500), the readers find the new primary by themselves, and every event answered
    202 is in the ledger exactly once; readiness is red while no primary answers."""
    before = [factories.seizure() for _ in range(20)]
    after = [factories.seizure() for _ in range(20)]
    readiness: list[bool] = []
    async with _liaison(cluster, data_dir) as (runtime, api):
        for event in before:
            await _until_accepted(api, event)
        old = cluster.primary()
        answers: list[int] = []
        stop = asyncio.Event()

        async def load() -> None:  # a steady publisher across the switch
            while not stop.is_set():
                answers.append((await _publish(api, factories.seizure())).status_code)
                readiness.append(all((await runtime.readiness()).values()))
                await asyncio.sleep(0.01)

        loader = asyncio.create_task(load())
        old.signal(signal.SIGKILL)
        await cluster.failed_over_from(old)
        for event in after:  # the first publishes on the new primary
            await _until_accepted(api, event)
        stop.set()
        await loader

        wanted = {e["id"] for e in before + after}

        async def recorded() -> bool:
            return wanted <= set(_ledger_ids(data_dir))

        await eventually(recorded, timeout=30)
        assert all((await runtime.readiness()).values())
        report = await runtime.ledger.verify()
    ids = _ledger_ids(data_dir)
    assert len(ids) == len(set(ids)), "an event recorded twice"
    assert report.ok, report.problems
    assert 503 in answers or False in readiness, "the failover went unnoticed: no fault injected?"


async def test_replicated_durability_refuses_to_acknowledge_while_a_replica_is_missing(
    cluster: SentinelCluster, data_dir: Path
) -> None:
    """``LIAISON_DURABILITY=replicated``: 202 only once both replicas have the event; with
    one stopped, 503 + Retry-After and readiness red; once it is back, the retried event is
    accepted and readiness green."""
    event = factories.seizure()
    settings = {"durability": "replicated", "redis_replicas": 2}
    async with _liaison(cluster, data_dir, **settings) as (runtime, api):
        await _until_accepted(api, factories.seizure())
        assert (await runtime.readiness())["replicas"]
        replica = cluster.servers[2]
        replica.signal(signal.SIGSTOP)
        try:
            refused = await api.post("/v1/events", json=event, headers=auth("mia"))

            async def unready() -> bool:
                return not (await runtime.readiness())["replicas"]

            await eventually(unready)
        finally:
            replica.signal(signal.SIGCONT)
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"] == "1"
        assert refused.headers["content-type"] == "application/problem+json"
        await _until_accepted(api, event)

        async def ready() -> bool:
            return all((await runtime.readiness()).values())

        await eventually(ready)


async def test_standard_durability_acknowledges_with_a_replica_missing(
    cluster: SentinelCluster, data_dir: Path
) -> None:
    """The contrast: ``standard`` does not wait for replicas (what it may lose is in the
    README's table)."""
    async with _liaison(cluster, data_dir) as (_, api):
        replica = cluster.servers[2]
        replica.signal(signal.SIGSTOP)
        try:
            response = await api.post("/v1/events", json=factories.seizure(), headers=auth("mia"))
        finally:
            replica.signal(signal.SIGCONT)
    assert response.status_code == 202, response.text


async def test_a_publisher_on_a_demoted_primary_gets_503_not_500(
    tmp_path: Path, data_dir: Path
) -> None:
    """A client configured with one URL whose server became a replica (a failover it is not
    told about) answers READONLY: a 503 to retry, not an internal error."""
    with EmbeddedRedis(tmp_path / "a") as first, EmbeddedRedis(tmp_path / "b") as second:
        settings = Settings(data_dir=data_dir, redis_url=first.url)
        async with Runtime(settings, principals_config(), services=("ingest",)) as runtime:
            transport = httpx.ASGITransport(app=create_app(runtime.deps()))
            async with httpx.AsyncClient(transport=transport, base_url="http://x") as api:
                admin = Redis.from_url(first.url)
                other = redis.Redis.from_url(second.url)
                port = free_port()  # the second listens on a socket only: give it a port
                other.config_set("port", str(port))
                await admin.replicaof("127.0.0.1", port)
                await admin.aclose()
                other.close()
                response = await api.post(
                    "/v1/events", json=factories.seizure(), headers=auth("mia")
                )
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"


async def test_a_one_shot_command_finds_the_new_primary(
    cluster: SentinelCluster, tmp_path: Path
) -> None:
    """``liaison import`` configured with the Sentinels only, run after a failover, writes to
    the new primary."""
    old = cluster.primary()
    old.signal(signal.SIGKILL)
    new = await cluster.failed_over_from(old)
    env = {**os.environ, "LIAISON_REDIS_SENTINELS": cluster.sentinels_setting,
           "LIAISON_DATA_DIR": str(tmp_path / "var")}  # fmt: skip
    sample = Path(__file__).parents[2] / "services/ingest/adapters/samples/scc-seizures.csv"
    done = await asyncio.to_thread(
        subprocess.run,
        [LIAISON, "import", "--adapter", "customs-csv", str(sample)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "8 rows: 8 published" in done.stdout
    assert new.client().xlen(streams.SEIZURES) == 8


@pytest.mark.parametrize("durability", ["standard", "strict"])
async def test_a_primary_refusing_writes_for_want_of_replicas_gives_503_not_500(
    tmp_path: Path, data_dir: Path, durability: str
) -> None:
    """``min-replicas-to-write``: a primary cut off from its replicas answers NOREPLICAS —
    an outage (503, retry), not a bad request or an internal error."""
    with EmbeddedRedis(tmp_path / "a") as server:
        settings = Settings(data_dir=data_dir, redis_url=server.url, durability=durability)
        async with Runtime(settings, principals_config(), services=("ingest",)) as runtime:
            transport = httpx.ASGITransport(app=create_app(runtime.deps()))
            async with httpx.AsyncClient(transport=transport, base_url="http://x") as api:
                await runtime.redis.config_set("min-replicas-to-write", "1")
                response = await api.post(
                    "/v1/events", json=factories.seizure(), headers=auth("mia")
                )
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"


async def test_the_webhook_worker_outlives_a_primary_refusing_writes(redis: Redis) -> None:
    """NOREPLICAS on the worker's reads and claims (an isolated primary under
    ``min-replicas-to-write``) is an outage to wait out, not the end of the worker: it
    stopped for good, and the notifier stayed unready after the failover healed."""
    worker = WebhookWorker(redis, [], RedisWebhookOutcomes(redis), "w1",
                           options=WorkerOptions(claim_idle=0.6, block=0.1))  # fmt: skip
    task = asyncio.create_task(worker.run())

    async def refused(times: int) -> bool:
        stats = await redis.info("errorstats")
        return int(stats.get("errorstat_NOREPLICAS", {}).get("count", 0)) >= times

    try:
        await eventually(lambda: _true(worker.running))
        await redis.config_set("min-replicas-to-write", "1")
        await eventually(lambda: refused(3))
        assert not task.done(), task.exception()
        assert worker.running
    finally:
        await redis.config_set("min-replicas-to-write", "0")
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _true(value: bool) -> bool:
    return value
