"""Changes to an alert (updates, cancellations, closures) follow their own handling codes too:
each is routed and redacted by the strictest of the alert's and the change's."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from services.bootstrap import Runtime
from services.core import streams
from services.core.settings import Settings
from services.entrypoints.http import create_app
from services.ingest import dlq
from tests import factories
from tests.integration.conftest import auth, eventually, principals_config

NEW_PERSON = {"name": "Rustam Nazarov", "nationality": "TJ", "document": "TJ-7788991"}


async def _entry(api: httpx.AsyncClient, unit: str, alert_id: str) -> dict[str, Any]:
    response = await api.get(f"/v1/units/{unit}/alerts", headers=auth("auditor"))
    [entry] = [a for a in response.json()["alerts"] if a["alert_id"] == alert_id]
    return entry


async def _raise(
    api: httpx.AsyncClient, recipients: tuple[str, ...] = (), **extra: Any
) -> dict[str, Any]:
    alert = factories.alert(**extra)
    alert["data"]["recipients"] = list(recipients)
    assert (await api.post("/v1/events", json=alert, headers=auth("customs"))).status_code == 202
    return alert


async def test_a_red_update_without_releasability_reaches_no_one_abroad(
    api: httpx.AsyncClient,
) -> None:
    """Issue 13.3: the alert may cross to TJ with identities; its update may not."""
    alert = await _raise(api, ("IMT-GULISTAN",), piireleasableto="TJ")

    async def delivered() -> bool:
        response = await api.get("/v1/units/BLO-FOTEHOBOD/alerts", headers=auth("auditor"))
        return bool(response.json()["alerts"])

    await eventually(delivered)
    update = factories.event(
        "alert.updated", "BLO-OYBEK", {"persons": [NEW_PERSON]}, subject=alert["id"], tlp="red"
    )
    assert (await api.post("/v1/events", json=update, headers=auth("customs"))).status_code == 202

    async def passed_on() -> bool:
        return bool((await _entry(api, "NIAC-UZ", alert["id"]))["changes"])

    await eventually(passed_on)
    for unit in ("BLO-FOTEHOBOD", "NIAC-UZ", "IMT-TASHKENT"):
        entry = await _entry(api, unit, alert["id"])
        [change] = entry["changes"]
        assert change["withheld"] is True, unit  # red: none of them was named explicitly
        assert change["type"] == "alert.updated"
        assert change["data"] == {}
        assert NEW_PERSON["name"] not in json.dumps(entry)
        assert NEW_PERSON["document"] not in json.dumps(entry)
        assert entry["state"] == "updated"
    named = await _entry(api, "IMT-GULISTAN", alert["id"])  # explicit, at home: all of it
    assert named["changes"][0]["data"]["persons"] == [NEW_PERSON]


async def test_each_recipient_gets_the_change_in_the_strictest_view(
    api: httpx.AsyncClient,
) -> None:
    alert = await _raise(api, piireleasableto="TJ")  # Fotehobod saw the alert's identities

    async def delivered() -> bool:
        response = await api.get("/v1/units/BLO-FOTEHOBOD/alerts", headers=auth("auditor"))
        return bool(response.json()["alerts"])

    await eventually(delivered)
    # released to TJ, but its identities to no one abroad
    update = factories.event("alert.updated", "BLO-OYBEK", {"persons": [NEW_PERSON]},
                             subject=alert["id"], releasableto="UZ,TJ")  # fmt: skip
    closed = factories.event(
        "alert.closed", "BLO-OYBEK", {"reason": "seized at Gulistan"}, subject=alert["id"]
    )  # fmt: skip  (no releasability: UZ only)
    for change in (update, closed):
        response = await api.post("/v1/events", json=change, headers=auth("customs"))
        assert response.status_code == 202

    async def passed_on() -> bool:
        return len((await _entry(api, "BLO-FOTEHOBOD", alert["id"]))["changes"]) == 2

    await eventually(passed_on)
    abroad = await _entry(api, "BLO-FOTEHOBOD", alert["id"])
    updated, ended = abroad["changes"]
    assert updated["data"] == {"persons_count": 1}
    assert NEW_PERSON["name"] not in json.dumps(abroad)
    assert ended["withheld"] is True
    assert "seized" not in json.dumps(ended)
    assert abroad["state"] == "closed"  # it knows the alert is over, not why
    home = await _entry(api, "IMT-GULISTAN", alert["id"])
    assert home["changes"][0]["data"]["persons"] == [NEW_PERSON]
    assert home["changes"][1]["data"]["reason"] == "seized at Gulistan"


RECIPIENTS = ("IMT-TASHKENT", "IMT-GULISTAN", "BLO-FOTEHOBOD", "NIAC-UZ")
"""Of the design example's alert (``factories.alert``)."""


@asynccontextmanager
async def _system(
    redis_url: str, data_dir: Path, retry_cap: int = 5
) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    """A whole runtime whose claimer takes over an entry pending for a second."""
    settings = Settings(data_dir=data_dir, redis_url=redis_url, database_url=None, config=None,
                        claim_idle=timedelta(seconds=1), retry_cap=retry_cap)  # fmt: skip
    async with Runtime(settings, principals_config()) as runtime:
        transport = httpx.ASGITransport(app=create_app(runtime.deps()))
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as api:
            yield runtime, api


async def _deliveries(redis: Redis) -> int:
    """How many times the claimer has handed out the one entry the notifier holds (0: none)."""
    rows = await redis.xpending_range(streams.ALERTS, streams.NOTIFIER_GROUP, "-", "+", 10)
    return max((int(r["times_delivered"]) for r in rows), default=0)


def _update(alert: dict[str, Any]) -> dict[str, Any]:
    return factories.event(
        "alert.updated", "BLO-OYBEK", {"summary": "two trucks now"}, subject=alert["id"]
    )


async def test_a_change_before_its_alert_waits_and_the_claimer_passes_it_on(
    redis_url: str, redis: Redis, data_dir: Path
) -> None:
    """admission.py: a change of an alert not delivered yet is held back (another notifier may
    still be delivering it) and retried by the claimer — the real one, on the real server —
    once the alert came; it reaches every recipient once, and nothing is dead-lettered."""
    alert = factories.alert()
    async with _system(redis_url, data_dir) as (_, api):
        posted = await api.post("/v1/events", json=_update(alert), headers=auth("customs"))
        assert posted.status_code == 202, posted.text

        async def held() -> bool:  # read, handled, not acknowledged
            return await _deliveries(redis) >= 1

        await eventually(held)
        posted = await api.post("/v1/events", json=alert, headers=auth("customs"))
        assert posted.status_code == 202, posted.text

        async def passed_on() -> bool:
            page = await api.get("/v1/units/IMT-TASHKENT/alerts", headers=auth("auditor"))
            return any(a["changes"] for a in page.json()["alerts"])

        await eventually(passed_on, timeout=30)

        async def settled() -> bool:
            return await _deliveries(redis) == 0

        await eventually(settled)
        for unit in RECIPIENTS:
            [change] = (await _entry(api, unit, alert["id"]))["changes"]
            assert change["type"] == "alert.updated", unit
    assert await redis.xlen(streams.DEAD_LETTERS) == 0


async def test_a_change_whose_alert_never_comes_is_dead_lettered_after_the_cap(
    redis_url: str, redis: Redis, data_dir: Path
) -> None:
    """…and dead-lettered, with the reason, only once the claimer has tried it the retry cap's
    number of times."""
    alert = factories.alert()
    update = _update(alert)
    async with _system(redis_url, data_dir, retry_cap=3) as (runtime, api):
        posted = await api.post("/v1/events", json=update, headers=auth("customs"))
        assert posted.status_code == 202, posted.text
        tries: set[int] = set()

        async def dead_lettered() -> bool:
            tries.add(await _deliveries(redis))
            return await redis.xlen(streams.DEAD_LETTERS) == 1

        await eventually(dead_lettered, timeout=60)
        [letter] = await dlq.list_dead_letters(runtime.redis)
    assert {1, 2, 3} <= tries  # held, then claimed again twice: never dead at the first try
    assert letter.origin == streams.ALERTS
    assert letter.reason.startswith("notifier: still failing after 3 deliveries"), letter.reason
    never = f"alert.updated of alert {alert['id']!r} of BLO-OYBEK, which was never delivered"
    assert letter.reason.endswith(never), letter.reason
    assert json.loads(letter.payload)["id"] == update["id"]
    assert await _deliveries(redis) == 0
