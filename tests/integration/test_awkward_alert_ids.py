"""Every alert id the schema accepts works in every HTTP path (issue 12, defect 2).

Agencies' own record numbers become ids (``BT-2024/0091``), and the schema
allows any printable text: the acknowledgement path takes the id as its last
segments before ``/ack``, percent-encoded or (for ``/``) raw.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from services.bootstrap import Runtime
from services.core import streams
from services.core.alert_paths import path_segment
from tests import factories
from tests.integration.conftest import auth, eventually

AWKWARD = factories.AWKWARD_IDS


async def _inbox(api: httpx.AsyncClient, unit: str) -> list[dict[str, Any]]:
    response = await api.get(f"/v1/units/{unit}/alerts", headers=auth("gulistan"))
    assert response.status_code == 200
    alerts: list[dict[str, Any]] = response.json()["alerts"]
    return alerts


async def _ledger(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await api.get("/v1/ledger/events?limit=1000", headers=auth("auditor"))
    return [e["event"] for e in response.json()["events"]]


@pytest.mark.parametrize("alert_id", AWKWARD, ids=repr)
async def test_an_alert_with_an_awkward_id_is_delivered_acknowledged_and_recorded(
    api: httpx.AsyncClient, runtime: Runtime, alert_id: str
) -> None:
    alert = factories.alert(id=alert_id)
    published = await api.post("/v1/events", json=alert, headers=auth("customs"))
    assert published.status_code == 202, published.text

    async def received() -> bool:
        return [a["alert_id"] for a in await _inbox(api, "IMT-GULISTAN")] == [alert_id]

    await eventually(received)
    url = f"/v1/units/IMT-GULISTAN/alerts/{path_segment(alert_id)}/ack"
    acked = await api.post(url, json={"officer": "Lt. Example"}, headers=auth("gulistan"))
    assert acked.status_code == 200, acked.text
    assert acked.json()["alert_id"] == alert_id
    assert acked.json()["acknowledgement"]["officer"] == "Lt. Example"

    async def recorded() -> bool:
        types = [e["type"] for e in await _ledger(api)]
        return types.count("alert.delivered") == 4 and types.count("alert.acknowledged") == 1

    await eventually(recorded)
    [ack] = [e for e in await _ledger(api) if e["type"] == "alert.acknowledged"]
    assert ack["data"]["alert_id"] == ack["subject"] == alert_id
    assert await runtime.redis.xlen(streams.DEAD_LETTERS) == 0


async def test_a_slash_in_an_id_may_be_sent_raw_or_encoded(api: httpx.AsyncClient) -> None:
    alert = factories.alert(id="BT-2024/0091")
    await api.post("/v1/events", json=alert, headers=auth("customs"))

    async def received() -> bool:
        return bool(await _inbox(api, "IMT-GULISTAN"))

    await eventually(received)
    for path in ("BT-2024/0091", "BT-2024%2F0091", "BT-2024%2f0091"):
        response = await api.post(
            f"/v1/units/IMT-GULISTAN/alerts/{path}/ack", headers=auth("gulistan")
        )
        assert response.status_code == 200, (path, response.text)
        assert response.json()["alert_id"] == "BT-2024/0091"
    missing = await api.post("/v1/units/IMT-GULISTAN/alerts/BT-2024/ack", headers=auth("gulistan"))
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
