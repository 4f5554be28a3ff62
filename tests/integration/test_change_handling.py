"""Changes to an alert (updates, cancellations, closures) follow their own handling codes too:
each is routed and redacted by the strictest of the alert's and the change's."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests import factories
from tests.integration.conftest import auth, eventually

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
