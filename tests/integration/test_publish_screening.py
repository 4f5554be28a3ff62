"""How ``POST /v1/events`` spends its effort: the publisher's units first, batches on the event
loop a slice at a time, large bodies and refused publishers' requests off it, a bounded list of
errors (issue 13, item 5). The load test is test_publish_flood."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from schemas.topology import default_topology
from services.bootstrap import Runtime
from services.core import streams
from services.core.problems import Problem
from services.ingest.refusals import Allowance
from services.ingest.screening import INLINE_MAX, MAX_ERRORS, SLICED_MAX, Screener
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


async def test_a_batch_is_screened_on_the_event_loop_a_slice_at_a_time(
    api: httpx.AsyncClient, redis: Redis, runtime: Runtime
) -> None:
    seizure = factories.seizure(unit="BLO-OYBEK")
    person = {"name": "Example Driver", "nationality": "TJ", "document": "P-0000"}
    seizure["data"]["persons"] = [person] * 20  # 1000 take ~0.1-0.3 s to validate
    batch = json.dumps([{**seizure, "id": f"s-{i}"} for i in range(1000)]).encode()
    assert INLINE_MAX < len(batch) <= SLICED_MAX
    headers = {**auth("customs"), "content-type": "application/json"}
    big = asyncio.create_task(api.post("/v1/events", content=batch, headers=headers))
    alert = factories.alert(unit="IMT-GULISTAN")
    while not big.done():  # the loop is given back between slices: another publisher's goes in
        small = await api.post("/v1/events", json=alert, headers=auth("mia"))
        assert small.status_code == 202, small.text
        if await redis.xlen(streams.ALERTS):
            break
    assert not big.done(), "the batch held the event loop until it was validated"
    assert (await big).status_code == 202
    assert await redis.xlen(streams.SEIZURES) == 1000
    assert runtime.screener.in_workers == 0


async def test_a_publisher_whose_requests_are_refused_has_the_next_screened_in_a_worker() -> None:
    # its allowance of event-loop time for refused requests does not grow back during the test
    screener = Screener(default_topology(), allowance=lambda: Allowance(rate=0.0))
    junk = json.dumps(_junk("BLO-OYBEK", events=150, keys=600)).encode()
    headers = {"content-type": "application/json"}
    customs, mia = ("uz-customs", ["BLO-OYBEK"]), ("uz-mia", ["IMT-GULISTAN"])
    try:
        for _ in range(50):  # each costs ~0.1-0.5 s of the loop; the allowance is 0.5 s
            with pytest.raises(Problem) as refused:
                await screener.events(headers, junk, *customs)
            assert refused.value.status == 422
            if screener.in_workers:
                break
        assert screener.in_workers == 1, "a publisher's refused requests kept the loop busy"
        on_loop = screener.on_loop

        # its next requests too, even valid ones, until its allowance has grown back
        batch = json.dumps([factories.seizure(unit="BLO-OYBEK") for _ in range(100)]).encode()
        assert len(await screener.events(headers, batch, *customs)) == 100
        small = json.dumps(factories.seizure(unit="BLO-OYBEK")).encode()
        assert len(await screener.events(headers, small, *customs)) == 1
        assert (screener.on_loop, screener.in_workers) == (on_loop, 3)

        # another publisher's stay on the event loop
        others = json.dumps([factories.seizure() for _ in range(100)]).encode()
        assert len(await screener.events(headers, others, *mia)) == 100
        assert (screener.on_loop, screener.in_workers) == (on_loop + 1, 3)
    finally:
        screener.close()
