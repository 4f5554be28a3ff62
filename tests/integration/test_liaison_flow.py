"""An alert through the real streams: fan-out, inboxes, acks, closure, ledger."""

from __future__ import annotations

import json
from typing import Any

import httpx

from services.bootstrap import Runtime
from services.core import streams
from tests import factories
from tests.integration.conftest import auth, eventually


async def _inbox(api: httpx.AsyncClient, unit: str) -> list[dict[str, Any]]:
    response = await api.get(f"/v1/units/{unit}/alerts", headers=auth("auditor"))
    assert response.status_code == 200
    alerts: list[dict[str, Any]] = response.json()["alerts"]
    return alerts


async def _ledger_types(api: httpx.AsyncClient) -> list[str]:
    response = await api.get("/v1/ledger/events?limit=1000", headers=auth("auditor"))
    return [e["event"]["type"] for e in response.json()["events"]]


async def test_alert_fans_out_to_the_designs_recipients(api: httpx.AsyncClient) -> None:
    alert = factories.alert()
    await api.post("/v1/events", json=alert, headers=auth("customs"))

    async def four_delivered() -> bool:
        return (await _ledger_types(api)).count("alert.delivered") == 4

    await eventually(four_delivered)
    gulistan = await _inbox(api, "IMT-GULISTAN")
    assert [a["alert_id"] for a in gulistan] == [alert["id"]]
    assert gulistan[0]["reasons"] == ["neighbour", "corridor"]
    assert gulistan[0]["event"]["data"]["persons"][0]["name"] == "Example Driver"
    fotehobod = (await _inbox(api, "BLO-FOTEHOBOD"))[0]
    assert fotehobod["view"] == "non-nominal"
    assert "persons" not in fotehobod["event"]["data"]
    assert fotehobod["event"]["data"]["persons_count"] == 1
    assert (await _inbox(api, "NIAC-UZ"))[0]["reasons"] == ["coordinator"]
    assert await _inbox(api, "IMT-SAMARKAND") == []
    assert await _inbox(api, "BLO-OYBEK") == []


async def test_redelivered_alert_is_delivered_once(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    alert = factories.alert()
    await api.post("/v1/events", json=alert, headers=auth("customs"))

    async def delivered() -> bool:
        return (await _ledger_types(api)).count("alert.delivered") == 4

    await eventually(delivered)
    # the same alert appended to the stream again, as a crashed publisher's retry would
    async for key in runtime.redis.scan_iter(match="{liaison}:seen:*"):
        await runtime.redis.hdel(key, f"{alert['source']} {alert['id']}")
    await api.post("/v1/events", json=alert, headers=auth("customs"))

    async def both_recorded() -> bool:
        return await runtime.redis.xlen("{liaison}:stream:alerts") == 2

    await eventually(both_recorded)
    info = await runtime.redis.xinfo_groups("{liaison}:stream:alerts")

    async def notifier_done() -> bool:
        groups = await runtime.redis.xinfo_groups("{liaison}:stream:alerts")
        return all(g["pending"] == 0 and g["entries-read"] == 2 for g in groups)

    await eventually(notifier_done)
    assert info
    assert len(await _inbox(api, "IMT-GULISTAN")) == 1
    assert (await _ledger_types(api)).count("alert.delivered") == 4
    # what a second delivery would leave a trace in: the live feeds' notifications and the
    # receipts published (the inbox is a hash and the ledger dedupes: they cannot tell)
    for unit in ("IMT-TASHKENT", "IMT-GULISTAN", "BLO-FOTEHOBOD", "NIAC-UZ"):
        feed = await runtime.redis.xrange(streams.feed_key(unit))
        assert [f[b"kind"] for _, f in feed] == [b"delivered"], unit
    receipts = [
        json.loads(f[streams.EVENT_FIELD.encode()])["type"]
        for _, f in await runtime.redis.xrange(streams.RECEIPTS)
    ]
    assert receipts.count("alert.delivered") == 4
    assert (await _ledger_types(api)).count("alert.raised") == 1


async def test_ack_is_idempotent_and_recorded(api: httpx.AsyncClient) -> None:
    alert = factories.alert()
    await api.post("/v1/events", json=alert, headers=auth("customs"))

    async def received() -> bool:
        return bool(await _inbox(api, "IMT-GULISTAN"))

    await eventually(received)
    url = f"/v1/units/IMT-GULISTAN/alerts/{alert['id']}/ack"
    first = await api.post(
        url, json={"officer": "Lt. Example", "note": "seen"}, headers=auth("gulistan")
    )
    second = await api.post(url, headers=auth("gulistan"))
    assert first.status_code == second.status_code == 200
    assert first.json()["acknowledged_by"] == second.json()["acknowledged_by"] == "gulistan-duty"
    assert first.json()["acknowledgement"]["officer"] == "Lt. Example"  # as typed, beside it
    assert first.json()["acknowledged_at"] == second.json()["acknowledged_at"]

    async def ack_recorded() -> bool:
        return (await _ledger_types(api)).count("alert.acknowledged") == 1

    await eventually(ack_recorded)


async def test_only_the_units_officer_may_ack(api: httpx.AsyncClient) -> None:
    alert = factories.alert()
    await api.post("/v1/events", json=alert, headers=auth("customs"))
    url = f"/v1/units/IMT-GULISTAN/alerts/{alert['id']}/ack"
    assert (await api.post(url, headers=auth("tashkent"))).status_code == 403
    assert (await api.post(url, headers=auth("auditor"))).status_code == 403
    assert (await api.post(url)).status_code == 401


async def test_ack_of_an_alert_never_received_is_404(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/units/IMT-GULISTAN/alerts/nope/ack", headers=auth("gulistan"))
    assert response.status_code == 404


async def test_inbox_is_for_its_officers_and_auditors(api: httpx.AsyncClient) -> None:
    assert (
        await api.get("/v1/units/IMT-GULISTAN/alerts", headers=auth("gulistan"))
    ).status_code == 200
    assert (
        await api.get("/v1/units/IMT-GULISTAN/alerts", headers=auth("tashkent"))
    ).status_code == 403
    assert (
        await api.get("/v1/units/IMT-GULISTAN/alerts", headers=auth("customs"))
    ).status_code == 403
    unknown = await api.get("/v1/units/IMT-NOWHERE/alerts", headers=auth("auditor"))
    assert unknown.status_code == 404


async def test_closure_reaches_every_recipient(api: httpx.AsyncClient) -> None:
    alert = factories.alert()
    await api.post("/v1/events", json=alert, headers=auth("customs"))

    async def delivered() -> bool:
        return (await _ledger_types(api)).count("alert.delivered") == 4

    await eventually(delivered)
    closed = factories.event(
        "alert.closed", "BLO-OYBEK", {"reason": "seized"}, subject=alert["id"], releasableto="UZ,TJ"
    )
    await api.post("/v1/events", json=closed, headers=auth("customs"))

    async def all_closed() -> bool:
        units = ("IMT-TASHKENT", "IMT-GULISTAN", "BLO-FOTEHOBOD", "NIAC-UZ")
        return all([(await _inbox(api, u))[0]["state"] == "closed" for u in units])

    await eventually(all_closed)


async def test_ledger_records_everything_once_and_verifies(api: httpx.AsyncClient) -> None:
    seizure = factories.seizure()
    for _ in range(2):
        await api.post("/v1/events", json=seizure, headers=auth("mia"))
    await api.post("/v1/events", json=factories.alert(), headers=auth("customs"))

    async def recorded() -> bool:
        return len(await _ledger_types(api)) == 1 + 1 + 4

    await eventually(recorded)
    verdict = (await api.get("/v1/ledger/verify", headers=auth("auditor"))).json()
    assert verdict["ok"] is True
    assert verdict["count"] == 6
    assert verdict["first_bad_seq"] is None
    assert (await api.get("/v1/ledger/verify", headers=auth("gulistan"))).status_code == 403


async def test_health_and_readiness(api: httpx.AsyncClient) -> None:
    assert (await api.get("/healthz")).json() == {"status": "ok"}

    async def ready() -> bool:
        return (await api.get("/readyz")).status_code == 200

    await eventually(ready)
    assert (await api.get("/readyz")).json() == {"ready": True}  # the status, to anyone
    checks = (await api.get("/readyz", headers=auth("metrics"))).json()["checks"]
    assert checks == {
        "redis": True,
        "subscribers": True,
        "webhooks": True,
        "database": True,
        "intake": True,
    }


async def test_only_the_originator_closes_an_alert(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    alert = factories.alert()
    await api.post("/v1/events", json=alert, headers=auth("customs"))

    async def delivered() -> bool:
        return (await _ledger_types(api)).count("alert.delivered") == 4

    await eventually(delivered)
    # the same publisher, but another of its units: not the alert's originator
    closed = factories.event("alert.closed", "BLO-AYRITOM", {"reason": "seized"},
                             subject=alert["id"], releasableto="UZ,TJ")  # fmt: skip
    refused = await api.post("/v1/events", json=closed, headers=auth("customs"))
    assert refused.status_code == 409
    assert "raised by BLO-OYBEK: only BLO-OYBEK may change it" in refused.json()["detail"]
    assert (await _inbox(api, "IMT-GULISTAN"))[0]["state"] != "closed"
    assert await runtime.redis.xlen(streams.ALERTS) == 1  # told at once: nothing published
