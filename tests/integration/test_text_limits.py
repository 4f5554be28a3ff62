"""Control characters in text are refused at the door, each error located (issue 13, item 9)."""

from __future__ import annotations

import httpx
from redis.asyncio import Redis

from services.core import streams
from tests import factories
from tests.integration.conftest import auth


async def test_a_summary_that_would_hide_itself_on_a_terminal_is_a_located_422(
    api: httpx.AsyncClient, redis: Redis
) -> None:
    alert = factories.alert()
    alert["data"]["summary"] = "ALL CLEAR\x1b[8m heroin in the cab"
    alert["data"]["persons"][0]["name"] = "Lt. A\nclosed by BLO-OYBEK"
    response = await api.post("/v1/events", json=[alert], headers=auth("customs"))
    assert response.status_code == 422, response.text
    errors = {(e["index"], e["field"]): e["message"] for e in response.json()["errors"]}
    assert set(errors) == {(0, "data.summary"), (0, "data.persons.0.name")}
    assert errors[0, "data.summary"].startswith("control character U+001B at position 9")
    assert "U+000A" in errors[0, "data.persons.0.name"]
    assert await redis.xlen(streams.ALERTS) == 0


async def test_a_note_keeps_its_lines_but_no_escape_sequence(api: httpx.AsyncClient) -> None:
    reason = {"reason": "seized\n\tat Oybek"}
    closed = factories.event("alert.closed", "BLO-OYBEK", reason, subject="some-alert")
    response = await api.post("/v1/events", json=closed, headers=auth("customs"))
    assert response.status_code == 202, response.text

    closed = {**closed, "id": "another", "data": {"reason": "seized\x1b[2J"}}
    response = await api.post("/v1/events", json=closed, headers=auth("customs"))
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["field"] == "data.reason"
    assert error["message"] == (
        "control character U+001B at position 6: not allowed here (only line breaks and tabs are)"
    )


async def test_an_acknowledgement_with_a_forged_line_is_a_located_422(
    api: httpx.AsyncClient,
) -> None:
    ack = "/v1/units/IMT-GULISTAN/alerts/some-alert/ack"
    body = {"officer": "Lt. A\r\nclosed by BLO-OYBEK"}
    response = await api.post(ack, json=body, headers=auth("gulistan"))
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["field"] == "body.officer"
    assert "control character U+000D" in error["message"]
