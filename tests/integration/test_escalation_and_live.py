"""Deadlines that survive restarts, and the live stream an officer watches."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from schemas.alerts import AlertRef
from services.bootstrap import Runtime
from services.core import streams
from services.core.settings import Settings
from services.entrypoints.http import create_app
from services.entrypoints.serve import ApiServer
from services.notifier.escalation import escalate_due
from services.notifier.inbox import RedisInbox
from tests import factories
from tests.integration.conftest import auth, eventually, principals_config


def _runtime(redis_url: str, data_dir: Path) -> Runtime:
    """Everything in one process, with the default deadlines (urgent: one hour)."""
    settings = Settings(data_dir=data_dir, redis_url=redis_url, database_url=None, config=None)
    return Runtime(settings, principals_config())


def _api(runtime: Runtime) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(runtime.deps()))
    return httpx.AsyncClient(transport=transport, base_url="http://x")


def _an_hour_later(runtime: Runtime) -> None:
    """Let the runtime's escalation see the clock past every deadline set today: the
    deadline is a persisted time, so moving the clock is what waiting an hour would do,
    without racing a short deadline on a loaded machine."""
    later = datetime.now(UTC) + timedelta(hours=1, minutes=1)
    # the very deps the notifier's escalation loop reads (frozen: set in place, for the test)
    object.__setattr__(runtime.notifier, "clock", lambda: later)


async def _types(api: httpx.AsyncClient) -> list[str]:
    page = (await api.get("/v1/ledger/events?limit=1000", headers=auth("auditor"))).json()
    return [e["event"]["type"] for e in page["events"]]


async def _inbox(api: httpx.AsyncClient, unit: str) -> dict[str, Any]:
    doc: dict[str, Any] = (
        await api.get(f"/v1/units/{unit}/alerts", headers=auth("auditor"))
    ).json()
    return doc


async def _delivered_and_stopped(redis_url: str, data_dir: Path, alert: dict[str, Any]) -> None:
    """Publish the alert, let it reach its four recipients, Gulistan acknowledge it; stop."""
    async with _runtime(redis_url, data_dir) as runtime, _api(runtime) as api:
        await api.post("/v1/events", json=alert, headers=auth("customs"))

        async def delivered() -> bool:
            return (await _types(api)).count("alert.delivered") == 4

        await eventually(delivered)
        ack = f"/v1/units/IMT-GULISTAN/alerts/{alert['id']}/ack"
        assert (await api.post(ack, headers=auth("gulistan"))).status_code == 200
        assert "alert.escalated" not in await _types(api)


async def test_a_deadline_that_passes_while_nothing_runs_escalates_after_the_restart(
    redis_url: str, data_dir: Path
) -> None:
    """Deadlines survive restarts: the process that set them is gone when they pass; the next
    one escalates each silent delivery once, and the one after that nothing again."""
    alert = factories.alert()
    await _delivered_and_stopped(redis_url, data_dir, alert)

    async with _runtime(redis_url, data_dir) as restarted, _api(restarted) as api:
        _an_hour_later(restarted)

        async def three_escalated() -> bool:
            return (await _types(api)).count("alert.escalated") == 3

        await eventually(three_escalated)
        tashkent = (await _inbox(api, "IMT-TASHKENT"))["alerts"][0]
        assert tashkent["escalated"] is True
        assert "IMT-TASHKENT" in tashkent["escalation"]["reminder"]
        assert (await _inbox(api, "IMT-GULISTAN"))["alerts"][0]["escalated"] is False
        notices = (await _inbox(api, "NIAC-UZ"))["notices"]
        assert [n["unit"] for n in notices] == ["IMT-TASHKENT"]

    async with _runtime(redis_url, data_dir) as again, _api(again) as api:
        _an_hour_later(again)
        assert await escalate_due(again.notifier) == 0
        assert (await _types(api)).count("alert.escalated") == 3


async def test_an_escalation_cut_short_by_a_crash_is_finished_after_the_restart(
    redis_url: str, redis: Redis, data_dir: Path
) -> None:
    """The escalation marks the delivery, then leaves the coordinator's notice, then publishes
    ``alert.escalated``: a process that died after the mark left the deadline due, and the next
    one finishes the notice and the event — once, on the real inbox."""
    alert = factories.alert()
    await _delivered_and_stopped(redis_url, data_dir, alert)
    ref = AlertRef("BLO-OYBEK", alert["id"])
    marked = datetime.now(UTC) + timedelta(hours=1)
    inbox = RedisInbox(redis)
    await inbox.escalate("IMT-TASHKENT", ref, {
        "escalated_at": marked.isoformat(), "deadline": marked.isoformat(),
        "coordinators": ["NIAC-UZ"], "reminder": "marked, then the process died",
    })  # fmt: skip
    assert await inbox.notices("NIAC-UZ") == []

    async with _runtime(redis_url, data_dir) as restarted, _api(restarted) as api:
        _an_hour_later(restarted)

        async def three_escalated() -> bool:
            return (await _types(api)).count("alert.escalated") == 3

        await eventually(three_escalated)
        tashkent = (await _inbox(api, "IMT-TASHKENT"))["alerts"][0]
        assert tashkent["escalation"]["reminder"] == "marked, then the process died"  # kept
        [notice] = (await _inbox(api, "NIAC-UZ"))["notices"]
        assert notice["unit"] == "IMT-TASHKENT"
        assert await escalate_due(restarted.notifier) == 0
        assert await redis.zcard(streams.DEADLINES) == 0
        page = await api.get("/v1/ledger/events?type=alert.escalated", headers=auth("auditor"))
        units = [e["event"]["data"]["unit"] for e in page.json()["events"]]
        assert sorted(units) == ["BLO-FOTEHOBOD", "IMT-TASHKENT", "NIAC-UZ"]  # once each


@pytest.fixture
async def served(runtime: Runtime) -> AsyncIterator[str]:
    server = ApiServer(create_app(runtime.deps()), "127.0.0.1", 0)
    url = await server.start()
    try:
        yield url
    finally:
        await server.stop()


async def _next_event(lines: AsyncIterator[str]) -> dict[str, str]:
    fields: dict[str, str] = {}
    async for line in lines:
        if not line:
            if "data" in fields:
                return fields
            fields = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(": ")
            fields[key] = value
    raise AssertionError("stream ended")


async def test_live_stream_pushes_changes_and_resumes(served: str) -> None:
    alert = factories.alert()
    stream_url = "/v1/units/IMT-GULISTAN/alerts/stream"
    async with httpx.AsyncClient(base_url=served, timeout=10) as client:
        async with client.stream("GET", stream_url, headers=auth("gulistan")) as live:
            assert live.headers["content-type"].startswith("text/event-stream")
            lines = live.aiter_lines()
            await client.post("/v1/events", json=alert, headers=auth("customs"))
            first = await _next_event(lines)
            assert first["event"] == "delivered"
            delivery = json.loads(first["data"])["delivery"]
            assert delivery["alert_id"] == alert["id"]
            assert delivery["reasons"] == ["neighbour", "corridor"]
            await client.post(
                f"/v1/units/IMT-GULISTAN/alerts/{alert['id']}/ack", headers=auth("gulistan")
            )
            second = await _next_event(lines)
            assert second["event"] == "acknowledged"
        resumed_headers = {**auth("gulistan"), "Last-Event-ID": first["id"]}
        async with client.stream("GET", stream_url, headers=resumed_headers) as resumed:
            again = await _next_event(resumed.aiter_lines())
            assert (again["id"], again["event"]) == (second["id"], "acknowledged")


async def test_live_stream_is_for_the_units_officers(served: str) -> None:
    async with httpx.AsyncClient(base_url=served, timeout=10) as client:
        response = await client.get(
            "/v1/units/IMT-GULISTAN/alerts/stream", headers=auth("tashkent")
        )
        assert response.status_code == 403
