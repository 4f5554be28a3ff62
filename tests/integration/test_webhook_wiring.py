"""Webhooks wired into the runtime: fan-out queues them, failures reach the ledger."""

from __future__ import annotations

from pathlib import Path

import httpx
from redis.asyncio import Redis
from standardwebhooks.webhooks import Webhook as Verifier

from schemas.events import CloudEvent
from schemas.receipts import AlertWebhookFailed
from services import streams
from services.bootstrap import Runtime
from services.bus import RedisPublisher, ensure_groups
from services.config import Settings, Webhook
from services.http import create_app
from services.notifier.webhook_outcomes import RecordedWebhookOutcomes
from services.notifier.webhook_queue import WebhookQueue
from services.notifier.webhooks import WebhookWorker
from tests import factories
from tests.integration.conftest import auth, eventually, principals_config
from tests.integration.test_webhooks import (
    FAST,
    OPTIONS,
    SECRET,
    Receiver,
    dead_url,
    receiver,
    running,
)

__all__ = ["dead_url", "receiver"]  # fixtures, imported so pytest finds them here


async def test_a_delivery_reaches_the_units_webhook_signed_and_shows_in_the_inbox(
    redis_url: str, data_dir: Path, receiver: tuple[Receiver, str]
) -> None:
    recv, base = receiver
    hook = Webhook(unit="BLO-FOTEHOBOD", url=f"{base}/fotehobod", secret=SECRET)
    config = principals_config().model_copy(update={"webhooks": (hook,)})
    settings = Settings(data_dir=data_dir, redis_url=redis_url, database_url=None, config=None)
    alert = factories.alert()
    async with Runtime(settings, config) as runtime:
        transport = httpx.ASGITransport(app=create_app(runtime.deps()))
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as api:
            await api.post("/v1/events", json=alert, headers=auth("customs"))
            await eventually(lambda: _arrived(recv))
            [request] = recv.to("fotehobod")
            body = Verifier(SECRET).verify(request.body, request.headers)
            assert body["id"] == alert["id"]
            assert "persons" not in body["data"]  # the recipient's (non-nominal) view
            assert body["data"]["persons_count"] == 1

            async def recorded() -> bool:
                page = (
                    await api.get("/v1/units/BLO-FOTEHOBOD/alerts", headers=auth("auditor"))
                ).json()
                hooks = page["alerts"][0]["webhooks"]
                return bool(hooks) and hooks[0]["state"] == "delivered"

            await eventually(recorded)


async def _arrived(recv: Receiver) -> bool:
    return bool(recv.to("fotehobod"))


async def test_an_exhausted_webhook_is_recorded_as_an_event(redis: Redis, dead_url: str) -> None:
    await ensure_groups(redis)
    dead = Webhook(unit="IMT-GULISTAN", url=dead_url, secret=SECRET)
    alert = factories.alert()
    await WebhookQueue(redis, [dead]).enqueue("IMT-GULISTAN", alert["id"], alert)
    outcomes = RecordedWebhookOutcomes(redis, RedisPublisher(redis))
    worker = WebhookWorker(redis, [dead], outcomes, "w", policy=FAST, options=OPTIONS)
    async with running(worker):

        async def recorded() -> bool:
            return await redis.xlen(streams.RECEIPTS) == 1

        await eventually(recorded)
    [(_, fields)] = await redis.xrange(streams.RECEIPTS)
    event = CloudEvent.from_json(fields[streams.EVENT_FIELD.encode()])
    assert event.type == "alert.webhook_failed"
    assert event.subject == alert["id"]
    assert isinstance(event.data, AlertWebhookFailed)
    assert (event.data.unit, event.data.attempts) == ("IMT-GULISTAN", FAST.max_attempts)
    assert event.releasableto == "UZ,TJ"
