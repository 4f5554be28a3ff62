"""Webhook delivery at volume: connections reused, and a single worker never fights itself.

A real receiver on loopback (:mod:`tests.integration.webhook_receiver`) counts the TCP
connections it accepted and the requests by ``webhook-id``; signatures are verified
with the ``standardwebhooks`` reference library.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from standardwebhooks.webhooks import Webhook as Verifier

from schemas.alerts import AlertRef
from services.core.config import Webhook
from services.core.redis_client import connect
from services.notifier import webhook_queue as queue
from services.notifier.webhook_outcomes import RedisWebhookOutcomes
from services.notifier.webhook_queue import WebhookQueue
from services.notifier.webhook_retry import RetryPolicy
from services.notifier.webhooks import WebhookWorker, WorkerOptions
from tests import factories
from tests.integration.conftest import eventually
from tests.integration.webhook_receiver import CountingReceiver

SECRET = "whsec_" + base64.b64encode(b"liaison-webhook-test-secret-32b!").decode()
FAST = RetryPolicy(max_attempts=4, base_delay=0.05, max_delay=0.2, request_timeout=10.0)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[CountingReceiver, str]]:
    recv = CountingReceiver()
    base = await recv.start()
    try:
        yield recv, base
    finally:
        await recv.stop()


@contextlib.asynccontextmanager
async def running(worker: WebhookWorker) -> AsyncIterator[None]:
    task = asyncio.create_task(worker.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _ref(alert: dict[str, Any]) -> AlertRef:
    return AlertRef(alert["source"].removeprefix("/units/"), alert["id"])


async def _queue_is_empty(redis: Redis) -> bool:
    pending = await redis.xpending(queue.STREAM, queue.GROUP)
    return int(pending["pending"]) == 0 and await redis.xlen(queue.STREAM) == 0


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Redis]:
    """A client as the runtime makes them (a bounded pool that waits for a free connection)."""
    redis = connect(redis_url)
    await queue.ensure_webhook_group(redis)
    try:
        yield redis
    finally:
        await redis.aclose()


async def test_many_deliveries_to_one_endpoint_share_a_few_connections(
    client: Redis, receiver: tuple[CountingReceiver, str]
) -> None:
    redis = client
    recv, base = receiver
    endpoint = Webhook(unit="IMT-GULISTAN", url=f"{base}/hook", secret=SECRET, allow_http=True)
    alerts = [factories.alert() for _ in range(200)]
    webhooks = WebhookQueue(redis, [endpoint])
    for alert in alerts:
        await webhooks.enqueue("IMT-GULISTAN", _ref(alert), alert)
    options = WorkerOptions(claim_idle=5.0, block=0.1, per_endpoint=4)
    worker = WebhookWorker(
        redis, [endpoint], RedisWebhookOutcomes(redis), "w1", policy=FAST, options=options
    )
    async with running(worker):

        async def all_arrived() -> bool:
            return len(recv.requests) >= len(alerts)

        await eventually(all_arrived)
        await eventually(lambda: _queue_is_empty(redis))

    assert len(recv.requests) == len(alerts)
    assert recv.connections <= options.per_endpoint  # each answer read, each connection reused
    for seen in recv.requests[:5]:
        Verifier(SECRET).verify(seen.body, seen.headers)


class _AfterAck(Pipeline):
    """A real pipeline that runs ``hook`` right after one that acknowledged entries."""

    hook: Any = None

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        acks = any(str(cmd[0][0]).upper() == "XACK" for cmd in self.command_stack)
        result = await super().execute(raise_on_error)
        if acks and self.hook is not None:
            await self.hook()
        return result


class HeartbeatAfterAck(Redis):
    """A real client whose worker heartbeats just after a job was acknowledged.

    That is the window between a job's XACK and the end of its task, where a
    heartbeat finds the entry no longer pending.
    """

    hook: Any = None

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        pipe = _AfterAck(self.connection_pool, self.response_callbacks, transaction, shard_hint)
        pipe.hook = self.hook
        return pipe


async def test_a_single_worker_finishing_a_job_does_not_think_it_was_taken_over(
    redis_url: str, receiver: tuple[CountingReceiver, str], caplog: pytest.LogCaptureFixture
) -> None:
    recv, base = receiver
    client = HeartbeatAfterAck.from_url(redis_url)
    await queue.ensure_webhook_group(client)
    endpoint = Webhook(unit="IMT-GULISTAN", url=f"{base}/hook", secret=SECRET, allow_http=True)
    alerts = [factories.alert() for _ in range(3)]
    for alert in alerts:
        await WebhookQueue(client, [endpoint]).enqueue("IMT-GULISTAN", _ref(alert), alert)
    worker = WebhookWorker(
        client,
        [endpoint],
        RedisWebhookOutcomes(client),
        "only",
        policy=FAST,
        options=WorkerOptions(claim_idle=5.0, block=0.1),
    )
    client.hook = worker.heartbeat_once
    caplog.set_level(logging.INFO, logger="services.notifier")
    try:
        async with running(worker):
            await eventually(lambda: _queue_is_empty(client))
            await eventually(lambda: asyncio.sleep(0, worker.in_flight == 0))
    finally:
        await client.aclose()
    assert sorted(recv.by_id().values()) == [1, 1, 1]
    assert not [r for r in caplog.records if "taken over" in r.getMessage()]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
