"""The fan-out queues webhook jobs beside the inbox write, not after it (issue 16).

Waiting for the inbox script's reply before queueing the jobs put a round trip on
every webhook's path. Both writes are idempotent, so a failure of either leaves the
alert pending and the re-run completes what is missing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from schemas.alerts import AlertRef
from schemas.events import CloudEvent
from schemas.topology import default_topology
from services.core.bus import RedisPublisher
from services.core.config import Webhook
from services.notifier import webhook_queue as queue
from services.notifier.handlers import NotifierDeps, fan_out
from services.notifier.inbox import RedisInbox
from services.notifier.webhook_queue import WebhookQueue
from tests import factories
from tests.integration.conftest import eventually

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
UNITS = ("IMT-TASHKENT", "IMT-GULISTAN")
"""Two of the recipients of the factories' alert, each with an endpoint."""


class HeldInbox(RedisInbox):
    """The real inbox, whose writes wait for ``gate`` (or fail with ``failure``)."""

    def __init__(self, redis: Redis) -> None:
        super().__init__(redis)
        self.gate = asyncio.Event()
        self.failure: Exception | None = None

    async def deliver(
        self, deliveries: Sequence[tuple[str, dict[str, Any], float]]
    ) -> list[dict[str, Any]]:
        await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        return await super().deliver(deliveries)


def _deps(redis: Redis, inbox: RedisInbox) -> NotifierDeps:
    endpoints = [
        Webhook(unit=u, url=f"http://127.0.0.1:9/{u}", secret=SECRET, allow_http=True)
        for u in UNITS
    ]
    return NotifierDeps(
        default_topology(), inbox, RedisPublisher(redis), webhooks=WebhookQueue(redis, endpoints)
    )


async def test_jobs_are_queued_while_the_inbox_write_is_in_flight(redis: Redis) -> None:
    inbox = HeldInbox(redis)
    alert = CloudEvent.model_validate(factories.alert())
    fanning = asyncio.create_task(fan_out(alert, _deps(redis, inbox)))

    async def queued() -> bool:
        return int(await redis.xlen(queue.STREAM)) == len(UNITS)

    await eventually(queued)  # before the inbox script has even been sent
    assert not fanning.done()
    ref = AlertRef(alert.unit or "", alert.id)
    assert await inbox.get(UNITS[0], ref) is None
    inbox.gate.set()
    recipients = await fanning
    assert set(UNITS) <= {r.unit for r in recipients}
    stored = await inbox.get(UNITS[0], ref)
    assert stored is not None
    [(_, fields)] = await redis.xrange(queue.STREAM, count=1)
    job = queue.WebhookJob.from_fields(fields)
    assert job.body == queue.encode_body(stored["event"])  # the job carries what the inbox holds


async def test_a_failed_inbox_write_raises_as_itself_and_the_rerun_queues_nothing_twice(
    redis: Redis,
) -> None:
    inbox = HeldInbox(redis)
    inbox.failure = RedisConnectionError("the server went away")
    inbox.gate.set()
    alert = CloudEvent.model_validate(factories.alert())
    deps = _deps(redis, inbox)
    with pytest.raises(RedisConnectionError):  # as raised: the claimer sees an outage
        await fan_out(alert, deps)
    assert int(await redis.xlen(queue.STREAM)) == len(UNITS)  # the jobs went in meanwhile
    inbox.failure = None
    await fan_out(alert, deps)  # the claimer's re-run
    assert int(await redis.xlen(queue.STREAM)) == len(UNITS)
    assert await inbox.get(UNITS[0], AlertRef(alert.unit or "", alert.id)) is not None
