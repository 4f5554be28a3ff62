"""Acknowledgements: who acknowledged (the authenticated principal, not a typed name), and an
ack that either happens with its ``alert.acknowledged`` receipt or not at all."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from services.bootstrap import Runtime
from services.core import streams
from services.core.config import FileConfig
from services.core.settings import Settings
from services.entrypoints.http import create_app
from services.ledger.audit import trail
from tests import factories
from tests.integration.conftest import auth, eventually, principals_config

PERSON = "Dilshod Karimov"


def _config() -> FileConfig:
    """The suite's principals, the Gulistan officer's token issued to one named person."""
    base = principals_config()
    principals = tuple(
        p.model_copy(update={"person": PERSON}) if p.name == "gulistan-duty" else p
        for p in base.principals
    )
    return base.model_copy(update={"principals": principals})


@pytest.fixture
async def runtime(redis_url: str, data_dir: Path) -> AsyncIterator[Runtime]:
    settings = Settings(data_dir=data_dir, redis_url=redis_url, database_url=None, config=None)
    async with Runtime(settings, _config()) as running:
        yield running


@pytest.fixture
async def api(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(runtime.deps()))
    async with httpx.AsyncClient(transport=transport, base_url="http://liaison") as client:
        yield client


async def _delivered(api: httpx.AsyncClient) -> str:
    alert = factories.alert()
    assert (await api.post("/v1/events", json=alert, headers=auth("customs"))).status_code == 202

    async def received() -> bool:
        return await _entry(api, alert["id"]) is not None

    await eventually(received)
    alert_id: str = alert["id"]
    return alert_id


async def _entry(api: httpx.AsyncClient, alert_id: str) -> dict[str, Any] | None:
    response = await api.get("/v1/units/IMT-GULISTAN/alerts", headers=auth("auditor"))
    return next((a for a in response.json()["alerts"] if a["alert_id"] == alert_id), None)


async def _acks_in_ledger(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await api.get(
        "/v1/ledger/events?type=alert.acknowledged&limit=100", headers=auth("auditor")
    )
    return [e["event"] for e in response.json()["events"]]


async def _deadline_pending(redis: Redis, alert_id: str) -> bool:
    member = f"IMT-GULISTAN\nBLO-OYBEK/{alert_id}"  # unit, then the alert key
    return await redis.zscore(streams.DEADLINES, member) is not None


@pytest.mark.parametrize(
    ("body", "field"),
    [({"officer": "   "}, "body.officer"), ({"note": ""}, "body.note"),
     ({"officer": "Lt. A", "note": " \t "}, "body.note")],
)  # fmt: skip
async def test_a_blank_name_or_note_is_refused_before_anything_happens(
    api: httpx.AsyncClient, runtime: Runtime, body: dict[str, str], field: str
) -> None:
    alert_id = await _delivered(api)
    url = f"/v1/units/IMT-GULISTAN/alerts/{alert_id}/ack"
    refused = await api.post(url, json=body, headers=auth("gulistan"))
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in refused.json()["errors"]] == [field]
    entry = await _entry(api, alert_id)
    assert entry is not None
    assert entry["acknowledged_at"] is None
    assert await _deadline_pending(runtime.redis, alert_id)  # escalation still watches it

    fixed = await api.post(url, json={"officer": "Lt. A"}, headers=auth("gulistan"))
    assert fixed.status_code == 200, fixed.text

    async def recorded() -> bool:
        return len(await _acks_in_ledger(api)) == 1

    await eventually(recorded)
    assert not await _deadline_pending(runtime.redis, alert_id)


async def test_the_event_inbox_and_trail_name_the_authenticated_principal(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    alert_id = await _delivered(api)
    url = f"/v1/units/IMT-GULISTAN/alerts/{alert_id}/ack"
    typed = {"officer": "Colonel Someone Else", "note": "patrols informed"}
    response = await api.post(url, json=typed, headers=auth("gulistan"))
    assert response.status_code == 200, response.text
    assert response.json()["acknowledged_by"] == "gulistan-duty"
    assert response.json()["acknowledgement"] == {
        "principal": "gulistan-duty", "person": PERSON, "officer": "Colonel Someone Else",
        "note": "patrols informed", "acknowledged_at": response.json()["acknowledged_at"],
    }  # fmt: skip

    async def recorded() -> bool:
        return len(await _acks_in_ledger(api)) == 1

    await eventually(recorded)
    [event] = await _acks_in_ledger(api)
    assert event["data"]["principal"] == "gulistan-duty"
    assert event["data"]["person"] == PERSON
    assert event["data"]["officer"] == "Colonel Someone Else"
    steps = [what async for _, _, what in trail(runtime.ledger, alert_id)]
    [ack_step] = [s for s in steps if s.startswith("acknowledged")]
    assert "gulistan-duty" in ack_step
    assert PERSON in ack_step
    assert "Colonel Someone Else" in ack_step
    assert "typed" in ack_step


async def test_an_ack_left_without_its_receipt_gets_it_on_retry(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    """An acknowledgement stored by an earlier version that then failed (blank name, no receipt):
    a retry records it in the ledger rather than failing again."""
    alert_id = await _delivered(api)
    stored = {"acknowledged_at": "2024-03-15T08:00:00+00:00", "acknowledged_by": "   ",
              "note": ""}  # fmt: skip
    await runtime.redis.hset(
        f"{streams.inbox_key('IMT-GULISTAN')}:acks", f"BLO-OYBEK/{alert_id}", json.dumps(stored)
    )
    url = f"/v1/units/IMT-GULISTAN/alerts/{alert_id}/ack"
    retry = await api.post(url, headers=auth("gulistan"))
    assert retry.status_code == 200, retry.text
    assert retry.json()["acknowledged_at"] == stored["acknowledged_at"]  # the first stands

    async def recorded() -> bool:
        return len(await _acks_in_ledger(api)) == 1

    await eventually(recorded)
    [event] = await _acks_in_ledger(api)
    assert event["data"]["acknowledged_at"] == "2024-03-15T08:00:00Z"
    assert "officer" not in event["data"]
    assert "note" not in event["data"]
