"""How ``POST /v1/events`` spends its effort: the publisher's units first, large bodies off the
event loop, a bounded list of errors (issue 13, item 5). The load test is test_publish_flood."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from redis.asyncio import Redis

from services import streams
from services.ingest.screening import INLINE_MAX, MAX_ERRORS
from tests import factories
from tests.integration.conftest import auth


def _junk(unit: str, events: int, keys: int) -> list[dict[str, Any]]:
    """Events each holding ``keys`` unknown attributes: the costliest body to validate."""
    unknown = {f"k{k}": k for k in range(keys)}
    return [{**factories.alert(unit=unit), **unknown} for _ in range(events)]


async def test_units_are_checked_before_the_events_are_validated(api: httpx.AsyncClient) -> None:
    body = _junk("BLO-DUSTLIK", events=50, keys=50)  # not uz-customs' unit, and invalid
    response = await api.post("/v1/events", json=body, headers=auth("customs"))
    assert response.status_code == 403, response.text
    assert response.json()["detail"] == "uz-customs may not publish for BLO-DUSTLIK"


async def test_a_large_body_is_validated_while_other_requests_are_answered(
    api: httpx.AsyncClient, redis: Redis
) -> None:
    junk = json.dumps(_junk("BLO-OYBEK", events=300, keys=600)).encode()
    assert len(junk) > INLINE_MAX
    headers = {**auth("customs"), "content-type": "application/json"}
    big = asyncio.create_task(api.post("/v1/events", content=junk, headers=headers))
    seizure = factories.seizure()
    while not big.done():  # the loop is free: another publisher's event goes through meanwhile
        small = await api.post("/v1/events", json=seizure, headers=auth("mia"))
        assert small.status_code == 202, small.text
        if await redis.xlen(streams.SEIZURES):
            break
    assert not big.done(), "the large body held the event loop until it was validated"
    response = await big
    assert response.status_code == 422
    problem = response.json()
    assert len(problem["errors"]) == MAX_ERRORS  # of 180,000
    assert problem["detail"].startswith(f"180000 errors, the first {MAX_ERRORS} listed")
    assert problem["errors"][0] == {
        "index": 0,
        "field": "k0",
        "message": "Extra inputs are not permitted",
    }


async def test_a_large_valid_batch_is_published_whole(api: httpx.AsyncClient, redis: Redis) -> None:
    alert = factories.alert()
    alert["data"]["persons"] = alert["data"]["persons"] * 100
    batch = [{**alert, "id": f"big-{i}"} for i in range(60)]
    assert len(json.dumps(batch)) > INLINE_MAX
    response = await api.post("/v1/events", json=batch, headers=auth("customs"))
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == [e["id"] for e in batch]
    assert await redis.xlen(streams.ALERTS) == 60
    [(_, fields)] = await redis.xrange(streams.ALERTS, count=1)
    assert len(json.loads(fields[b"__data__"])["data"]["persons"]) == 100
