"""Junk at every endpoint other than publish (test_publish_modes covers that one):
refused with a problem document, never a 500, and ingest stays up afterwards."""

from __future__ import annotations

import httpx
import pytest

from tests import factories
from tests.integration.conftest import auth

ACK = "/v1/units/IMT-GULISTAN/alerts/some-alert/ack"


def _assert_problem(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == status


async def _ingest_still_up(api: httpx.AsyncClient) -> None:
    event = factories.alert()
    response = await api.post("/v1/events", json=event, headers=auth("customs"))
    assert response.json() == {"accepted": [event["id"]], "duplicates": []}


@pytest.mark.parametrize(
    "query",
    [
        "after=abc", "after=-1", "after=1e3", "after=99999999999999999999999999",
        "limit=0", "limit=1001", "limit=x", "limit=",
        "since=yesterday", "until=2026-13-01", "since=1" + "0" * 400,
        "since=9999-12-31T23:59:59-14:00", "until=0001-01-01T00:00:00%2B14:00",
        "since=2026-01-01T00:00:00%00",
    ],
)  # fmt: skip
async def test_ledger_query_junk_is_422(api: httpx.AsyncClient, query: str) -> None:
    response = await api.get(f"/v1/ledger/events?{query}", headers=auth("auditor"))
    _assert_problem(response, 422)
    await _ingest_still_up(api)


async def test_ledger_type_filter_takes_any_text_harmlessly(api: httpx.AsyncClient) -> None:
    for junk in ("'; DROP TABLE events; --", "%", "_", "\u0000", "x" * 10_000):
        response = await api.get(
            "/v1/ledger/events", params={"type": junk}, headers=auth("auditor")
        )
        assert response.status_code in (200, 422), response.text
        if response.status_code == 200:
            assert response.json()["events"] == []
    await _ingest_still_up(api)


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b'{"note": "' + b"x" * 2_000_000 + b'"}', "application/json", 413),
        (b'{"note": ' + b"[" * 20_000 + b"]" * 20_000 + b"}", "application/json", 400),
        (b'{"note": "\xff\xfe"}', "application/json", 400),
        (b'{"note": "x" * 3000}', "application/json", 422),  # FastAPI locates JSON errors
        (b'{"note": "' + b"x" * 3000 + b'"}', "application/json", 422),
        (b'{"officer": 7}', "application/json", 422),
        (b'{"colour": "red"}', "application/json", 422),
        (b"[]", "application/json", 422),
        (b"note=seen", "application/x-www-form-urlencoded", 415),
        (b"seen", "text/plain", 415),
        (b"<ack/>", "application/xml", 415),
    ],
)
async def test_ack_body_junk_is_refused(
    api: httpx.AsyncClient, body: bytes, content_type: str, status: int
) -> None:
    headers = {**auth("gulistan"), "content-type": content_type}
    _assert_problem(await api.post(ACK, content=body, headers=headers), status)
    await _ingest_still_up(api)


async def test_an_oversized_body_is_413_before_it_is_read(api: httpx.AsyncClient) -> None:
    async def endless() -> object:
        for _ in range(1000):
            yield b"x" * 65536

    headers = {**auth("gulistan"), "content-type": "application/json"}
    _assert_problem(await api.post(ACK, content=endless(), headers=headers), 413)  # type: ignore[arg-type]
    await _ingest_still_up(api)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/units/" + "X" * 20_000 + "/alerts",
        "/v1/units/IMT-GULISTAN%00/alerts",
        "/v1/units/%FF%FE/alerts",
        "/v1/units/IMT-GULISTAN/alerts/" + "a" * 20_000 + "/ack",
    ],
)
async def test_junk_paths_are_4xx(api: httpx.AsyncClient, path: str) -> None:
    who = "auditor" if path.endswith("/alerts") else "gulistan"
    method = "GET" if path.endswith("/alerts") else "POST"
    response = await api.request(method, path, headers=auth(who))
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"] == "application/problem+json"
    await _ingest_still_up(api)
