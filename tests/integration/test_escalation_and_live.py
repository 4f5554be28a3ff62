"""Deadlines that survive restarts, and the live stream an officer watches."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.bootstrap import Runtime
from services.core.config import AckDeadlines
from services.core.settings import Settings
from services.entrypoints.http import create_app
from services.entrypoints.serve import ApiServer
from services.notifier.escalation import escalate_due
from tests import factories
from tests.integration.conftest import auth, eventually, principals_config


def _runtime(redis_url: str, data_dir: Path) -> Runtime:
    settings = Settings(data_dir=data_dir, redis_url=redis_url, database_url=None, config=None)
    config = principals_config().model_copy(
        update={"ack_deadlines": AckDeadlines(urgent=timedelta(seconds=2))}
    )
    return Runtime(settings, config)


async def _types(api: httpx.AsyncClient) -> list[str]:
    page = (await api.get("/v1/ledger/events?limit=1000", headers=auth("auditor"))).json()
    return [e["event"]["type"] for e in page["events"]]


async def _inbox(api: httpx.AsyncClient, unit: str) -> dict[str, Any]:
    doc: dict[str, Any] = (
        await api.get(f"/v1/units/{unit}/alerts", headers=auth("auditor"))
    ).json()
    return doc


async def test_silence_escalates_once_even_across_a_restart(redis_url: str, data_dir: Path) -> None:
    alert = factories.alert()
    async with _runtime(redis_url, data_dir) as runtime:
        api = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(runtime.deps())), base_url="http://x"
        )
        async with api:
            await api.post("/v1/events", json=alert, headers=auth("customs"))

            async def delivered() -> bool:
                return bool((await _inbox(api, "IMT-GULISTAN"))["alerts"])

            await eventually(delivered)
            ack = f"/v1/units/IMT-GULISTAN/alerts/{alert['id']}/ack"
            assert (await api.post(ack, headers=auth("gulistan"))).status_code == 200

            async def three_escalated() -> bool:
                return (await _types(api)).count("alert.escalated") == 3

            await eventually(three_escalated)
            tashkent = (await _inbox(api, "IMT-TASHKENT"))["alerts"][0]
            assert tashkent["escalated"] is True
            assert "IMT-TASHKENT" in tashkent["escalation"]["reminder"]
            assert (await _inbox(api, "IMT-GULISTAN"))["alerts"][0]["escalated"] is False
            notices = (await _inbox(api, "NIAC-UZ"))["notices"]
            assert [n["unit"] for n in notices] == ["IMT-TASHKENT"]

    async with _runtime(redis_url, data_dir) as restarted:
        assert await escalate_due(restarted.notifier) == 0
        api = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(restarted.deps())), base_url="http://x"
        )
        async with api:
            assert (await _types(api)).count("alert.escalated") == 3


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
