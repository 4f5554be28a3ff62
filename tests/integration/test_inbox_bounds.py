"""What one alert may cost the server (issue 13.6): a bounded size, one copy of each view
however many units receive it, a retention, a paged inbox, and a full server that answers
503 rather than losing anything."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from schemas.alerts import AlertRef
from schemas.events import CloudEvent
from services.bootstrap import Runtime
from services.core import streams
from services.core.alert_register import AlertRegister
from services.core.settings import Settings
from services.entrypoints.http import create_app
from services.notifier.inbox import RedisInbox
from services.notifier.retention import expire_inboxes
from tests import factories
from tests.integration.conftest import auth, eventually, principals_config
from tests.integration.test_acl import AclServer, acl_server

__all__ = ["acl_server"]  # a fixture, imported so pytest finds it here

RECIPIENTS = ("IMT-TASHKENT", "IMT-GULISTAN", "BLO-FOTEHOBOD", "NIAC-UZ")


def _big_alert(description_chars: int, vehicles: int = 30) -> dict[str, Any]:
    alert = factories.alert()
    alert["data"]["vehicles"] = [
        {"plate": f"01 TJ {n:03d} AA", "description": "x" * description_chars}
        for n in range(vehicles)
    ]
    return alert


async def _inbox(api: httpx.AsyncClient, unit: str, query: str = "") -> dict[str, Any]:
    response = await api.get(f"/v1/units/{unit}/alerts{query}", headers=auth("auditor"))
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def test_an_alert_over_64_kib_is_refused_with_a_located_error(
    api: httpx.AsyncClient,
) -> None:
    alert = _big_alert(2000)  # every string and list within its own bound, ~60 KB of them
    alert["data"]["consignment"] = "y" * 2000
    alert["data"]["summary"] = "z" * 2000
    alert["data"]["vehicles"] += [{"plate": "01 UZ 1", "description": "w" * 2000}] * 3
    response = await api.post("/v1/events", json=alert, headers=auth("customs"))
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["field"] == "data.vehicles"  # the largest part of it
    assert "65536" in error["message"]
    assert "64 KiB" in error["message"]
    fits = _big_alert(1000)
    assert (await api.post("/v1/events", json=fits, headers=auth("customs"))).status_code == 202


async def test_every_recipient_shares_one_copy_of_each_view(
    api: httpx.AsyncClient, redis: Redis
) -> None:
    alert = _big_alert(2000)
    assert (await api.post("/v1/events", json=alert, headers=auth("customs"))).status_code == 202

    async def everyone_has_it() -> bool:
        return all([bool((await _inbox(api, u))["alerts"]) for u in RECIPIENTS])

    await eventually(everyone_has_it)
    for unit in RECIPIENTS:  # the entry refers to the view; it does not hold it
        assert await redis.hstrlen(streams.inbox_key(unit), f"BLO-OYBEK/{alert['id']}") < 2048
        [entry] = (await _inbox(api, unit))["alerts"]
        assert entry["event"]["data"]["vehicles"] == alert["data"]["vehicles"]
    views = await redis.hgetall(streams.views_key(AlertRef("BLO-OYBEK", alert["id"])))
    assert len(views) == 2  # full (three units) and non-nominal (Fotehobod)
    per_copy = len(json.dumps(alert))
    assert sum(len(v) for v in views.values()) < 2.2 * per_copy


async def test_the_inbox_is_read_a_page_at_a_time(api: httpx.AsyncClient) -> None:
    ids = []
    for _ in range(5):
        alert = factories.alert()
        ids.append(alert["id"])
        assert (
            await api.post("/v1/events", json=alert, headers=auth("customs"))
        ).status_code == 202

        async def arrived(alert_id: str = alert["id"]) -> bool:  # one at a time: distinct times
            page = await _inbox(api, "IMT-GULISTAN", "?limit=200")
            return alert_id in [a["alert_id"] for a in page["alerts"]]

        await eventually(arrived)
    seen: list[str] = []
    query = "?limit=2"
    while True:
        page = await _inbox(api, "IMT-GULISTAN", query)
        assert len(page["alerts"]) <= 2
        seen += [a["alert_id"] for a in page["alerts"]]
        if page["next"] is None:
            break
        query = f"?limit=2&after={page['next']}"
    assert seen == ids[::-1]  # newest first, each once
    too_many = await api.get("/v1/units/IMT-GULISTAN/alerts?limit=100000", headers=auth("auditor"))
    assert too_many.status_code == 422
    bad = await api.get("/v1/units/IMT-GULISTAN/alerts?after=nonsense", headers=auth("auditor"))
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"].endswith("after")


async def test_an_alert_leaves_the_inboxes_its_retention_after_its_last_change(
    redis: Redis,
) -> None:
    """Driven on the inbox itself with its clock, so nothing waits for real time."""
    clock = [1_000_000.0]
    day = 86400.0
    inbox = RedisInbox(redis, retention=3 * day, clock=lambda: clock[0])
    alert = CloudEvent.model_validate(factories.alert())
    view = alert.model_dump(mode="json", exclude_none=True)
    deliveries = [
        (unit, {"alert_id": alert.id, "alert_source": "BLO-OYBEK", "event": view,
                "reasons": ["neighbour"], "view": "full", "delivered_at": "2024-03-15T08:00:00+00:00",
                "deadline": "2024-03-15T09:00:00+00:00"}, clock[0])
        for unit in ("IMT-GULISTAN", "IMT-TASHKENT")
    ]  # fmt: skip
    await inbox.deliver(deliveries)
    clock[0] += 2 * day
    closed = factories.event("alert.closed", "BLO-OYBEK", {"reason": "seized"}, subject=alert.id)
    ref = AlertRef("BLO-OYBEK", alert.id)
    await inbox.record_change("IMT-GULISTAN", ref, closed)
    await inbox.escalate("IMT-TASHKENT", ref, {"escalated_at": "x", "coordinators": ["NIAC-UZ"]})
    await inbox.notify("NIAC-UZ", {"alert_id": alert.id, "alert_source": "BLO-OYBEK",
                                   "unit": "IMT-TASHKENT",
                                   "escalated_at": "2024-03-15T09:00:00+00:00"})  # fmt: skip

    assert await expire_inboxes(redis, clock[0] + 2 * day) == 0  # 3 days after the closure: not yet
    assert await inbox.get("IMT-GULISTAN", ref) is not None
    assert await expire_inboxes(redis, clock[0] + 3 * day + 1) == 1
    for unit in ("IMT-GULISTAN", "IMT-TASHKENT"):
        assert await inbox.get(unit, ref) is None
        assert await inbox.list(unit) == []
    assert await inbox.notices("NIAC-UZ") == []
    assert await inbox.recipients(ref) == {}
    leftovers = [k async for k in redis.scan_iter(match="{liaison}:*") if alert.id.encode() in k]
    assert leftovers == []
    assert await redis.zcard(streams.DEADLINES) == 0
    assert await redis.zcard(streams.INBOX_EXPIRY) == 0


async def test_an_expired_alert_leaves_the_register_of_alert_origins(redis: Redis) -> None:
    """The register (alert id → the units that raised one, read by ingest to refuse another
    unit's change) grew by every alert ever delivered: 2,300 fields after 20 minutes of the
    soak, never removed. An alert leaves it with its inboxes; another unit's alert of the
    same id stays."""
    clock = [1_000_000.0]
    inbox = RedisInbox(redis, retention=60.0, clock=lambda: clock[0])
    register = AlertRegister(redis)
    alert = CloudEvent.model_validate(factories.alert())
    ref, other = AlertRef("BLO-OYBEK", alert.id), AlertRef("BLO-AYRITOM", alert.id)
    await register.claim([ref, other])
    view = alert.model_dump(mode="json", exclude_none=True)
    delivery = {"alert_id": alert.id, "alert_source": "BLO-OYBEK", "event": view,
                "reasons": ["neighbour"], "view": "full", "delivered_at": "2024-03-15T08:00:00+00:00",
                "deadline": "2024-03-15T09:00:00+00:00"}  # fmt: skip
    await inbox.deliver([("IMT-GULISTAN", delivery, clock[0])])
    assert await register.origins([alert.id]) == [("BLO-OYBEK", "BLO-AYRITOM")]

    assert await expire_inboxes(redis, clock[0] + 61) == 1
    assert await register.origins([alert.id]) == [("BLO-AYRITOM",)]
    await register.claim([AlertRef("IMT-TERMEZ", "another")])
    await inbox.deliver([("IMT-GULISTAN", {**delivery, "alert_source": "BLO-AYRITOM"}, clock[0])])
    assert await expire_inboxes(redis, clock[0] + 121) == 1
    assert await redis.hkeys(streams.ALERT_ORIGINS) == [b"another"]  # the field is gone


async def test_a_running_notifier_expires_inboxes_by_itself(
    redis_url: str, data_dir: Path, redis: Redis
) -> None:
    settings = Settings(data_dir=data_dir, redis_url=redis_url, database_url=None, config=None,
                        inbox_retention=timedelta(seconds=0.5))  # fmt: skip
    async with Runtime(settings, principals_config()) as running:
        transport = httpx.ASGITransport(app=create_app(running.deps()))
        async with httpx.AsyncClient(transport=transport, base_url="http://liaison") as api:
            alert = factories.alert()
            response = await api.post("/v1/events", json=alert, headers=auth("customs"))
            assert response.status_code == 202

            async def delivered_then_gone() -> bool:
                ledger = await api.get("/v1/ledger/events?type=alert.delivered",
                                       headers=auth("auditor"))  # fmt: skip
                inboxes = [await redis.exists(streams.inbox_key(u)) for u in RECIPIENTS]
                return len(ledger.json()["events"]) == 4 and not any(inboxes)

            await eventually(delivered_then_gone)
            ref = AlertRef("BLO-OYBEK", alert["id"])
            assert not await redis.exists(streams.views_key(ref))
            assert not await redis.exists(streams.recipients_key(ref))


@pytest.fixture
async def frugal(redis_url: str, data_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A runtime whose claimers retry after 0.2 s, so the test need not wait 30 s."""
    settings = Settings(data_dir=data_dir, redis_url=redis_url, database_url=None, config=None,
                        claim_idle=timedelta(seconds=0.2))  # fmt: skip
    async with Runtime(settings, principals_config()) as running:
        transport = httpx.ASGITransport(app=create_app(running.deps()))
        async with httpx.AsyncClient(transport=transport, base_url="http://liaison") as client:
            yield client


async def test_a_full_server_answers_503_and_loses_nothing_it_accepted(
    frugal: httpx.AsyncClient, redis: Redis
) -> None:
    api = frugal
    accepted: list[str] = []
    alert = factories.alert()
    assert (await api.post("/v1/events", json=alert, headers=auth("customs"))).status_code == 202
    accepted.append(alert["id"])
    before = (await redis.config_get("maxmemory"))["maxmemory"]
    try:
        used = (await redis.info("memory"))["used_memory"]
        await redis.config_set("maxmemory", str(used))  # full now: noeviction refuses writes
        refused = None
        for _ in range(50):
            alert = factories.alert()
            response = await api.post("/v1/events", json=alert, headers=auth("customs"))
            if response.status_code == 202:
                accepted.append(alert["id"])
                continue
            refused = response
            break
        assert refused is not None, "the server never filled up"
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"]
        assert refused.headers["content-type"] == "application/problem+json"
    finally:
        await redis.config_set("maxmemory", before)
    again = factories.alert()

    async def accepted_again() -> bool:  # back-pressure saw the full server: it reads again
        response = await api.post("/v1/events", json=again, headers=auth("customs"))
        return response.status_code == 202  # within 0.5 s (re-sending is idempotent)

    await eventually(accepted_again)
    accepted.append(again["id"])

    async def all_delivered_and_recorded() -> bool:
        page = await _inbox(api, "IMT-GULISTAN", "?limit=200")
        delivered = {a["alert_id"] for a in page["alerts"]}
        ledger = await api.get("/v1/ledger/events?type=alert.raised&limit=1000",
                               headers=auth("auditor"))  # fmt: skip
        recorded = {e["event"]["id"] for e in ledger.json()["events"]}
        return set(accepted) <= delivered and set(accepted) <= recorded

    await eventually(all_delivered_and_recorded, timeout=30)
    dead = await redis.xlen(streams.DEAD_LETTERS)
    assert dead == 0


async def test_the_shipped_server_configuration_caps_memory_without_eviction(
    acl_server: AclServer,
) -> None:
    admin = acl_server.client("admin")
    try:
        config = await admin.config_get("maxmemory*")
    finally:
        await admin.aclose()
    assert int(config["maxmemory"]) > 0
    assert config["maxmemory-policy"] == "noeviction"


async def test_the_notifier_and_ops_users_may_do_all_of_it(acl_server: AclServer) -> None:
    """Paging, expiring and redacted changes under the shipped ACL: nothing is refused."""
    notifier, ops, admin = (acl_server.client(u) for u in ("notifier", "ops", "admin"))
    try:
        await admin.flushall()
        inbox = RedisInbox(notifier, retention=1.0, clock=lambda: 1_000.0)
        alerts = [CloudEvent.model_validate(factories.alert()) for _ in range(3)]
        for n, alert in enumerate(alerts):
            view = alert.model_dump(mode="json", exclude_none=True)
            delivery = {"alert_id": alert.id, "alert_source": "BLO-OYBEK", "event": view,
                        "reasons": ["neighbour"], "view": "full",
                        "delivered_at": "2024-03-15T08:00:00+00:00"}  # fmt: skip
            await inbox.deliver([("IMT-GULISTAN", delivery, 1_000.0 + n)])
        closed = factories.event("alert.closed", "BLO-OYBEK", {"reason": "x"}, subject=alerts[0].id)
        await inbox.record_change("IMT-GULISTAN", AlertRef("BLO-OYBEK", alerts[0].id), closed)
        first, after = await RedisInbox(ops).page("IMT-GULISTAN", 2)
        assert [e["alert_id"] for e in first] == [alerts[2].id, alerts[1].id]
        rest, end = await RedisInbox(ops).page("IMT-GULISTAN", 2, after)
        assert [e["alert_id"] for e in rest] == [alerts[0].id]
        assert end is None
        assert rest[0]["state"] == "closed"
        assert await expire_inboxes(notifier, 5_000.0) == 3
        assert await RedisInbox(ops).list("IMT-GULISTAN") == []
    finally:
        for client in (notifier, ops, admin):
            await client.aclose()
