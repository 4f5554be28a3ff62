"""Webhooks wired into the runtime: fan-out queues them, failures reach the ledger."""

from __future__ import annotations

from pathlib import Path

import httpx
from redis.asyncio import Redis
from standardwebhooks.webhooks import Webhook as Verifier

from schemas.events import CloudEvent
from schemas.receipts import AlertWebhookFailed
from services.bootstrap import Runtime
from services.core import streams
from services.core.bus import RedisPublisher, ensure_groups
from services.core.config import Webhook
from services.core.settings import Settings
from services.entrypoints.http import create_app
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
    _ref,
    dead_url,
    receiver,
    running,
)

__all__ = ["dead_url", "receiver"]  # fixtures, imported so pytest finds them here


async def test_a_delivery_reaches_the_units_webhook_signed_and_shows_in_the_inbox(
    redis_url: str, data_dir: Path, receiver: tuple[Receiver, str]
) -> None:
    recv, base = receiver
    hook = Webhook(unit="BLO-FOTEHOBOD", url=f"{base}/fotehobod", secret=SECRET, allow_http=True)
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
    dead = Webhook(unit="IMT-GULISTAN", url=dead_url, secret=SECRET, allow_http=True)
    alert = factories.alert()
    await WebhookQueue(redis, [dead]).enqueue("IMT-GULISTAN", _ref(alert), alert)
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


async def _every_value(redis: Redis) -> bytes:
    """Everything the server holds, as one blob: keys, hash fields, stream entries, strings."""
    out = []
    async for key in redis.scan_iter(count=1000):
        out.append(key)
        kind = (await redis.type(key)).decode()
        if kind == "string":
            out.append(await redis.get(key) or b"")
        elif kind == "hash":
            for field, value in (await redis.hgetall(key)).items():  # type: ignore[misc]
                out += [field, value]
        elif kind == "stream":
            for _, fields in await redis.xrange(key):
                for field, value in fields.items():
                    out += [field, value]
        elif kind == "zset":
            out += [m for m, _ in await redis.zrange(key, 0, -1, withscores=True)]
    return b"\n".join(out)


async def test_endpoint_credentials_reach_neither_redis_nor_the_inbox(
    redis_url: str, redis: Redis, data_dir: Path, receiver: tuple[Receiver, str], dead_url: str
) -> None:
    """Issue 13.10: officers, auditors and the `ops` user see an endpoint's name, not its URL."""
    recv, base = receiver
    host, port = base.removeprefix("http://").split(":")
    live = Webhook(unit="BLO-FOTEHOBOD", url=f"http://siem:hunter2@{host}:{port}/fotehobod"
                   "?api_key=K3Y-SECRET", secret=SECRET, allow_http=True)  # fmt: skip
    dead = Webhook(unit="IMT-TASHKENT", name="tashkent-siem", secret=SECRET, allow_http=True,
                   url=dead_url.replace("://", "://ops:swordfish@") + "?token=T0K3N")  # fmt: skip
    config = principals_config().model_copy(update={"webhooks": (live, dead)})
    settings = Settings(data_dir=data_dir, redis_url=redis_url, database_url=None, config=None)
    alert = factories.alert()
    async with Runtime(settings, config) as runtime:
        transport = httpx.ASGITransport(app=create_app(runtime.deps()))
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as api:
            await api.post("/v1/events", json=alert, headers=auth("customs"))
            await eventually(lambda: _arrived(recv))

            async def settled(unit: str, state: str) -> list[dict[str, object]]:
                page = await api.get(f"/v1/units/{unit}/alerts", headers=auth("auditor"))
                hooks: list[dict[str, object]] = page.json()["alerts"][0]["webhooks"]
                return hooks if hooks and hooks[0]["state"] == state else []

            async def both() -> bool:
                return bool(await settled("BLO-FOTEHOBOD", "delivered")) and bool(
                    await settled("IMT-TASHKENT", "retrying")
                )

            await eventually(both)
            shown = [await settled("BLO-FOTEHOBOD", "delivered"),
                     await settled("IMT-TASHKENT", "retrying")]  # fmt: skip
    assert shown[0][0]["endpoint"] == f"http://{host}:{port}/fotehobod"
    assert shown[1][0]["endpoint"] == "tashkent-siem"
    stored = await _every_value(redis)
    for secret in ("hunter2", "K3Y-SECRET", "swordfish", "T0K3N"):
        assert secret not in str(shown), secret
        assert secret.encode() not in stored, secret
