"""A fresh job's first POST goes out before any Redis write; a takeover still counts it.

Issue 16: counting the first attempt before making it put a round trip to the server on
every delivery's path. The count is now written only after a failed attempt, and a job
taken over without one counts as tried once (its worker may have sent it before dying).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis
from standardwebhooks.webhooks import Webhook as Verifier

from services.core.config import Webhook
from services.notifier import webhook_queue as queue
from services.notifier.webhook_outcomes import RedisWebhookOutcomes, webhook_outcomes
from services.notifier.webhook_queue import WebhookQueue
from services.notifier.webhooks import WebhookWorker, WorkerOptions
from tests import factories
from tests.integration.conftest import eventually
from tests.integration.test_webhooks import FAST, SECRET, Receiver, _ref, _state, receiver

__all__ = ["receiver"]  # the fixture, shared with test_webhooks


@contextlib.asynccontextmanager
async def running(worker: WebhookWorker) -> AsyncIterator[None]:
    task = asyncio.create_task(worker.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _finished(redis: Redis, alert: dict[str, Any]) -> bool:
    """The job delivered, acknowledged and deleted, its progress forgotten."""
    pending = await redis.xpending(queue.STREAM, queue.GROUP)
    return (
        int(pending["pending"]) == 0
        and await redis.xlen(queue.STREAM) == 0
        and await redis.hlen(queue.PROGRESS) == 0
        and await _state(redis, "IMT-GULISTAN", _ref(alert)) == "delivered"
    )


def _worker(redis: Redis, endpoint: Webhook, name: str, claim_idle: float) -> WebhookWorker:
    options = WorkerOptions(claim_idle=claim_idle, block=0.1)
    return WebhookWorker(
        redis, [endpoint], RedisWebhookOutcomes(redis), name, policy=FAST, options=options
    )


async def test_a_fresh_jobs_first_post_is_sent_before_any_progress_is_written(
    redis: Redis, receiver: tuple[Receiver, str]
) -> None:
    recv, base = receiver
    recv.hanging.add("gulistan")  # the POST stays in flight until released
    endpoint = Webhook(unit="IMT-GULISTAN", url=f"{base}/gulistan", secret=SECRET, allow_http=True)
    alert = factories.alert()
    await WebhookQueue(redis, [endpoint]).enqueue("IMT-GULISTAN", _ref(alert), alert)

    async with running(_worker(redis, endpoint, "w1", claim_idle=30.0)):
        try:

            async def posted() -> bool:
                return len(recv.to("gulistan")) == 1

            await eventually(posted)
            assert await redis.hgetall(queue.PROGRESS) == {}  # nothing written before the POST
        finally:
            recv.release.set()  # even on failure: the worker's close waits for its request
        await eventually(lambda: _finished(redis, alert))
    [record] = await webhook_outcomes(redis, "IMT-GULISTAN", _ref(alert))
    assert (record["state"], record["attempts"]) == ("delivered", 1)


async def test_a_job_taken_over_without_a_count_counts_its_first_worker_s_attempt(
    redis: Redis, receiver: tuple[Receiver, str]
) -> None:
    recv, base = receiver
    endpoint = Webhook(unit="IMT-GULISTAN", url=f"{base}/gulistan", secret=SECRET, allow_http=True)
    alert = factories.alert()
    await WebhookQueue(redis, [endpoint]).enqueue("IMT-GULISTAN", _ref(alert), alert)
    await queue.ensure_webhook_group(redis)
    # A worker read it and died (before or during its first POST): pending, no count.
    await redis.xreadgroup(queue.GROUP, "died", {queue.STREAM: ">"}, count=10)

    async with running(_worker(redis, endpoint, "takes-over", claim_idle=0.3)):
        await eventually(lambda: _finished(redis, alert))
    [request] = recv.to("gulistan")
    Verifier(SECRET).verify(request.body, request.headers)
    [record] = await webhook_outcomes(redis, "IMT-GULISTAN", _ref(alert))
    assert (record["state"], record["attempts"]) == ("delivered", 2)


async def test_a_failed_first_attempt_is_counted_with_the_next_ones_time(
    redis: Redis, receiver: tuple[Receiver, str]
) -> None:
    recv, base = receiver
    recv.scripts["gulistan"] = [(503, {"Retry-After": "30"})]  # the second attempt waits
    endpoint = Webhook(unit="IMT-GULISTAN", url=f"{base}/gulistan", secret=SECRET, allow_http=True)
    alert = factories.alert()
    await WebhookQueue(redis, [endpoint]).enqueue("IMT-GULISTAN", _ref(alert), alert)

    async with running(_worker(redis, endpoint, "w1", claim_idle=30.0)):

        async def retrying() -> bool:
            return await _state(redis, "IMT-GULISTAN", _ref(alert)) == "retrying"

        await eventually(retrying)
        progress = await redis.hgetall(queue.PROGRESS)
    [entry] = {k.decode().rsplit(":", 1)[0] for k in progress}
    assert progress[f"{entry}:n".encode()] == b"1"
    assert float(progress[f"{entry}:next".encode()]) > 0
