"""Operations (closed groups) on the real server: an alert of an operation reaches its members
only, within its handling codes; an unknown, closed or foreign operation is a located 422 at
ingest and a dead letter at the notifier; the ledger records the operations (issue 20)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from redis.asyncio import Redis

from schemas.events import CloudEvent
from services.bootstrap import Runtime
from services.core import streams
from services.core.bus import RedisPublisher
from services.ledger.scan import Query
from tests import factories
from tests.integration.conftest import auth, eventually

MEMBERS = ["IMT-GULISTAN", "BLO-FOTEHOBOD", "IMT-NUKUS"]


def _opened(name: str = "OP-NORTH-2026", **times: datetime) -> dict[str, Any]:
    now = datetime.now(UTC)
    data = {
        "name": name,
        "title": "Northern route, spring",
        "members": MEMBERS,
        "start": times.get("start", now - timedelta(hours=1)).isoformat(),
        "end": times.get("end", now + timedelta(days=30)).isoformat(),
    }
    return factories.event("operation.opened", "BLO-OYBEK", data)


async def _publish(api: httpx.AsyncClient, *events: dict[str, Any]) -> httpx.Response:
    body = list(events) if len(events) > 1 else events[0]
    return await api.post("/v1/events", json=body, headers=auth("customs"))


async def _recipients(runtime: Runtime, alert_id: str) -> dict[str, list[str]]:
    receipts: dict[str, list[str]] = {}
    async for entry in runtime.ledger.entries(Query(types=("alert.delivered",))):
        data = entry.event["data"]
        if data["alert_id"] == alert_id:
            receipts[data["recipient"]] = data["reasons"]
    return receipts


async def test_an_operations_alert_reaches_its_members_only(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    assert (await _publish(api, _opened())).status_code == 202
    alert = factories.alert(operation="OP-NORTH-2026")  # releasable to UZ, TJ
    response = await _publish(api, alert)  # right after the 202: the register has it
    assert response.status_code == 202, response.text

    async def delivered() -> bool:
        return len(await _recipients(runtime, alert["id"])) == 3

    await eventually(delivered)
    got = await _recipients(runtime, alert["id"])
    # Without the operation: IMT-TASHKENT, IMT-GULISTAN, BLO-FOTEHOBOD and NIAC-UZ.
    assert got == {
        "BLO-FOTEHOBOD": ["counterpart", "operation"],
        "IMT-GULISTAN": ["neighbour", "corridor", "operation"],
        "IMT-NUKUS": ["operation"],
    }
    inbox = await api.get("/v1/units/IMT-TASHKENT/alerts", headers=auth("tashkent"))
    assert alert["id"] not in inbox.text
    fotehobod = await runtime.api_inbox.list("BLO-FOTEHOBOD")
    assert "Example Driver" not in json.dumps(fotehobod)  # TJ: still the non-nominal view

    async def recorded() -> bool:
        types = [e.event["type"] async for e in runtime.ledger.entries()]
        return "operation.opened" in types

    await eventually(recorded)


async def test_unknown_closed_and_foreign_operations_are_located_422s(
    api: httpx.AsyncClient,
) -> None:
    unknown = await _publish(api, factories.alert(operation="OP-NOBODY"))
    assert unknown.status_code == 422
    assert unknown.json()["errors"] == [
        {
            "index": None,
            "field": "operation",
            "message": "unknown operation 'OP-NOBODY': open it with operation.opened first",
        }
    ]
    assert (await _publish(api, _opened("OP-SHUT"))).status_code == 202
    not_member = await _publish(api, factories.alert("BLO-AYRITOM", operation="OP-SHUT"))
    assert not_member.status_code == 422
    assert "BLO-AYRITOM is not a member of operation OP-SHUT" in not_member.text
    closing = factories.event("operation.closed", "BLO-OYBEK", {"name": "OP-SHUT"})
    assert (await _publish(api, closing)).status_code == 202
    closed = await _publish(api, factories.alert(operation="OP-SHUT"))
    assert closed.status_code == 422
    assert "operation OP-SHUT closed at" in closed.text
    later = datetime.now(UTC) + timedelta(days=1)
    future = _opened("OP-LATER", start=later, end=later + timedelta(days=1))
    batch = await _publish(api, future, factories.alert(operation="OP-LATER"))
    assert batch.status_code == 422
    assert batch.json()["errors"][0]["index"] == 1
    assert "operation OP-LATER opens at" in batch.text
    stolen = factories.event("operation.closed", "IMT-GULISTAN", {"name": "OP-SHUT"})
    taken = await api.post("/v1/events", json=stolen, headers=auth("mia"))
    assert taken.status_code == 422
    assert "only BLO-OYBEK, which opened operation OP-SHUT, may close it" in taken.text
    seizure = await api.post(
        "/v1/events", json=factories.seizure(operation="OP-SHUT"), headers=auth("mia")
    )
    assert seizure.status_code == 422  # a seizure may belong to one; this one is closed
    assert "operation OP-SHUT closed at" in seizure.text
    wrong_type = factories.event(
        "alert.closed", "BLO-OYBEK", {"reason": "x"}, subject="A-1", operation="OP-SHUT"
    )
    refused = await _publish(api, wrong_type)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "operation"


async def test_the_notifier_dead_letters_what_raced_past_ingest(
    runtime: Runtime, api: httpx.AsyncClient, redis: Redis
) -> None:
    assert (await _publish(api, _opened("OP-RACE"))).status_code == 202
    closing = factories.event("operation.closed", "BLO-OYBEK", {"name": "OP-RACE"})
    assert (await _publish(api, closing)).status_code == 202
    late = CloudEvent.model_validate(factories.alert(operation="OP-RACE"))
    await RedisPublisher(runtime.redis).publish([late])  # straight onto the stream

    async def dead() -> bool:
        return await redis.xlen(streams.DEAD_LETTERS) >= 1

    await eventually(dead)
    entries: list[tuple[bytes, dict[bytes, bytes]]] = await redis.xrange(streams.DEAD_LETTERS)  # type: ignore[assignment]
    [(_, fields)] = entries
    assert b"operation OP-RACE closed at" in fields[b"reason"]
    assert await _recipients(runtime, late.id) == {}
