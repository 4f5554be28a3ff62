"""``POST /v1/events`` against a real server: auth, validation, idempotency."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis

from services.core import streams
from tests import factories
from tests.integration.conftest import auth


async def test_publish_accepts_and_appends_to_the_stream(
    api: httpx.AsyncClient, redis: Redis
) -> None:
    event = factories.alert()
    response = await api.post("/v1/events", json=event, headers=auth("customs"))
    assert response.status_code == 202
    assert response.json() == {"accepted": [event["id"]], "duplicates": []}
    entries = await redis.xrange(streams.ALERTS)
    assert len(entries) == 1


async def test_republish_is_a_duplicate_and_appends_nothing(
    api: httpx.AsyncClient, redis: Redis
) -> None:
    event = factories.alert()
    await api.post("/v1/events", json=event, headers=auth("customs"))
    again = await api.post("/v1/events", json=event, headers=auth("customs"))
    assert again.status_code == 202
    assert again.json() == {"accepted": [], "duplicates": [event["id"]]}
    assert await redis.xlen(streams.ALERTS) == 1


async def test_batch_reports_new_and_duplicate_ids(api: httpx.AsyncClient) -> None:
    first, second = factories.alert(), factories.alert()
    await api.post("/v1/events", json=first, headers=auth("customs"))
    response = await api.post("/v1/events", json=[first, second], headers=auth("customs"))
    assert response.json() == {"accepted": [second["id"]], "duplicates": [first["id"]]}


async def test_batch_with_one_bad_event_publishes_nothing(
    api: httpx.AsyncClient, redis: Redis
) -> None:
    bad = factories.alert()
    del bad["data"]["severity"]
    response = await api.post("/v1/events", json=[factories.alert(), bad], headers=auth("customs"))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    errors = response.json()["errors"]
    assert {k: errors[0][k] for k in ("index", "field")} == {"index": 1, "field": "data.severity"}
    assert await redis.xlen(streams.ALERTS) == 0


async def test_missing_token_is_401_problem(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/events", json=factories.alert())
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_wrong_token_is_401(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/v1/events", json=factories.alert(), headers={"Authorization": "Bearer not-a-token"}
    )
    assert response.status_code == 401
    assert response.json()["detail"] == "unknown token"


async def test_publishing_for_another_unit_is_403(api: httpx.AsyncClient, redis: Redis) -> None:
    response = await api.post(
        "/v1/events", json=factories.alert(unit="IMT-GULISTAN"), headers=auth("customs")
    )
    assert response.status_code == 403
    assert "IMT-GULISTAN" in response.json()["detail"]
    assert await redis.xlen(streams.ALERTS) == 0


async def test_officer_cannot_publish(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/events", json=factories.alert(), headers=auth("gulistan"))
    assert response.status_code == 403


async def test_unknown_unit_is_422_naming_the_source(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/v1/events", json=factories.alert(unit="BLO-NOWHERE"), headers=auth("customs")
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "source"


async def test_invalid_field_is_422_naming_it(api: httpx.AsyncClient) -> None:
    event = factories.seizure()
    event["data"]["drugs"][0]["quantity"] = -3
    response = await api.post("/v1/events", json=event, headers=auth("mia"))
    assert response.status_code == 422
    fields = [e["field"] for e in response.json()["errors"]]
    assert fields == ["data.drugs.0.quantity"]


async def test_system_types_cannot_be_published(api: httpx.AsyncClient) -> None:
    event = factories.event("alert.delivered", "BLO-OYBEK", {})
    response = await api.post("/v1/events", json=event, headers=auth("customs"))
    assert response.status_code == 422


async def test_malformed_json_is_a_clear_400(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/v1/events",
        content=b"{not json",
        headers={**auth("customs"), "content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["title"] == "Malformed JSON"


async def test_oversized_batch_is_413(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/v1/events", json=[factories.alert()] * 1001, headers=auth("customs")
    )
    assert response.status_code == 413


async def test_seizure_quantities_are_normalised_to_kg(
    api: httpx.AsyncClient, redis: Redis
) -> None:
    await api.post("/v1/events", json=factories.seizure(grams=20032), headers=auth("mia"))
    [(_, fields)] = await redis.xrange(streams.SEIZURES)
    assert b'"quantity":20.032' in fields[streams.EVENT_FIELD.encode()]
    assert b'"measure":"kg"' in fields[streams.EVENT_FIELD.encode()]


MiB = 2**20
LIMIT = 8 * MiB
"""docs/http-api.md: bodies over 8 MiB are 413 (written here, not imported from the code)."""


async def _chunks(total: int) -> AsyncIterator[bytes]:
    """``total`` bytes of a JSON array of spaces, streamed without a Content-Length."""
    yield b"["
    sent = 1
    while sent < total - 1:
        piece = min(65536, total - 1 - sent)
        yield b" " * piece
        sent += piece
    yield b"]"


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_a_body_over_8_mib_is_413_and_one_of_8_mib_is_read(
    api: httpx.AsyncClient, redis: Redis, declared: bool
) -> None:
    headers = {**auth("customs"), "content-type": "application/json"}

    async def post(size: int) -> httpx.Response:
        if declared:
            return await api.post("/v1/events", content=b"[" + b" " * (size - 2) + b"]",
                                  headers=headers)  # fmt: skip
        return await api.post("/v1/events", content=_chunks(size), headers=headers)

    over = await post(LIMIT + 1)
    assert over.status_code == 413, over.text
    assert over.headers["content-type"] == "application/problem+json"
    at_limit = await post(LIMIT)  # read and parsed: an empty batch, refused for what it is
    assert at_limit.status_code not in (413, 500), at_limit.text
    assert at_limit.status_code in (400, 422), at_limit.text
    assert await redis.xlen(streams.ALERTS) == 0
