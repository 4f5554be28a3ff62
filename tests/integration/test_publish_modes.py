"""``POST /v1/events`` in every CloudEvents HTTP mode, as the official SDK sends them."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import httpx
import pytest
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.v1.event import CloudEvent as SdkEvent
from cloudevents.v1 import conversion as legacy_conversion
from cloudevents.v1.http import CloudEvent as LegacySdkEvent
from redis.asyncio import Redis

from schemas.events import CloudEvent
from services.core import streams
from tests import factories
from tests.integration.conftest import auth


def _sdk(event: dict[str, Any], datacontenttype: bool = True) -> SdkEvent:
    attributes = {k: v for k, v in event.items() if k != "data"}
    attributes["time"] = datetime.fromisoformat(event["time"])
    if datacontenttype:
        attributes["datacontenttype"] = "application/json"
    return SdkEvent(attributes=attributes, data=event["data"])


def _core_sdk(
    mode: str, event: dict[str, Any], datacontenttype: bool
) -> tuple[bytes, dict[str, str]]:
    """The SDK's own message (``cloudevents.core``, 2.x)."""
    sdk = _sdk(event, datacontenttype)
    message = ce_http.to_binary_event(sdk) if mode == "binary" else ce_http.to_structured_event(sdk)
    return message.body, dict(message.headers)


def _legacy_sdk(
    mode: str, event: dict[str, Any], datacontenttype: bool
) -> tuple[bytes, dict[str, str]]:
    """The SDK's 1.x-compatible API (``cloudevents.v1``), still shipped in 2.x."""
    attributes = {k: v for k, v in event.items() if k != "data"}
    if datacontenttype:
        attributes["datacontenttype"] = "application/json"
    sdk = LegacySdkEvent(attributes, event["data"])
    convert = legacy_conversion.to_binary if mode == "binary" else legacy_conversion.to_structured
    headers, body = convert(sdk)
    return body, dict(headers)


@pytest.mark.parametrize("datacontenttype", [True, False], ids=["datacontenttype", "without"])
@pytest.mark.parametrize("mode", ["binary", "structured"])
@pytest.mark.parametrize("sdk", [_core_sdk, _legacy_sdk], ids=["core", "v1"])
async def test_every_mode_of_the_official_sdk_is_accepted(
    api: httpx.AsyncClient, redis: Redis, sdk: Any, mode: str, datacontenttype: bool
) -> None:
    """CloudEvents HTTP binding 1.0.2, 3.1.1: in binary mode Content-Type *is* datacontenttype,
    so an event without one (JSON, by the spec's default) comes with no Content-Type at all."""
    alert = factories.alert()
    body, headers = sdk(mode, alert, datacontenttype)
    lowered = {name.lower() for name in headers}
    assert ("ce-specversion" in lowered) is (mode == "binary")
    assert ("content-type" in lowered) is (mode == "structured" or datacontenttype)

    response = await _post(api, body, headers)

    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": [alert["id"]], "duplicates": []}
    [stored] = await _stored(redis, streams.ALERTS)
    summary = stored.data.model_dump()["summary"]
    assert (stored.id, stored.datacontenttype, summary) == (
        alert["id"],
        "application/json",
        alert["data"]["summary"],
    )


async def test_structured_mode_may_carry_ce_headers_too(api: httpx.AsyncClient) -> None:
    """Binding 3.2.3: a structured message MAY also carry the binary mode's headers."""
    alert = factories.alert()
    headers = {
        "content-type": "application/cloudevents+json",
        "ce-specversion": "1.0",
        "ce-id": alert["id"],
    }
    response = await _post(api, json.dumps(alert).encode(), headers)
    assert response.status_code == 202, response.text


async def test_binary_headers_are_unquoted_then_percent_decoded(
    api: httpx.AsyncClient, redis: Redis
) -> None:
    """Binding 3.1.3.2: a double-quoted value (older senders) is unquoted first."""
    message = ce_http.to_binary_event(_sdk(factories.alert()))
    headers = {**message.headers, "ce-subject": '"case \\"7\\"%20%E2%82%AC"'}
    response = await _post(api, message.body, headers)
    assert response.status_code == 202, response.text
    [stored] = await _stored(redis, streams.ALERTS)
    assert stored.subject == 'case "7" €'


async def test_a_binary_header_that_is_not_utf8_once_decoded_is_a_located_422(
    api: httpx.AsyncClient,
) -> None:
    """Binding 3.1.3.2: percent-encoded bytes that are not UTF-8 MUST be rejected."""
    message = ce_http.to_binary_event(_sdk(factories.alert()))
    headers = {**message.headers, "ce-subject": "case%C0%A0"}
    response = await _post(api, message.body, headers)
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["ce-subject"]


async def _stored(redis: Redis, stream: str) -> list[CloudEvent]:
    return [CloudEvent.from_json(f[b"__data__"]) for _, f in await redis.xrange(stream)]


async def _post(
    api: httpx.AsyncClient, body: bytes, headers: dict[str, str], who: str = "customs"
) -> httpx.Response:
    return await api.post("/v1/events", content=body, headers={**headers, **auth(who)})


async def test_binary_mode_from_the_sdk_is_accepted_and_normalised(
    api: httpx.AsyncClient, redis: Redis
) -> None:
    seizure = factories.seizure(grams=20032)
    message = ce_http.to_binary_event(_sdk(seizure))
    assert "ce-id" in message.headers  # the SDK's default mode really is binary

    response = await _post(api, message.body, message.headers, who="mia")

    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": [seizure["id"]], "duplicates": []}
    [stored] = await _stored(redis, streams.SEIZURES)
    drug = stored.model_dump(mode="json")["data"]["drugs"][0]
    assert (drug["substance"], drug["quantity"], drug["measure"]) == ("heroin", 20.032, "kg")


async def test_structured_mode_from_the_sdk_is_accepted(
    api: httpx.AsyncClient, redis: Redis
) -> None:
    alert = factories.alert()
    message = ce_http.to_structured_event(_sdk(alert))
    assert message.headers["content-type"] == "application/cloudevents+json"

    response = await _post(api, message.body, message.headers)

    assert response.status_code == 202, response.text
    [stored] = await _stored(redis, streams.ALERTS)
    assert (stored.id, stored.releasableto) == (alert["id"], "UZ,TJ")


async def test_a_batch_content_type_is_all_or_nothing(api: httpx.AsyncClient, redis: Redis) -> None:
    batch = "application/cloudevents-batch+json"
    good = [factories.alert(), factories.alert()]
    response = await _post(api, json.dumps(good).encode(), {"content-type": batch})
    assert response.json()["accepted"] == [e["id"] for e in good]

    bad = factories.alert()
    bad["data"]["severity"] = "whenever"
    again = await _post(api, json.dumps([factories.alert(), bad]).encode(), {"content-type": batch})
    assert again.status_code == 422
    assert [(e["index"], e["field"]) for e in again.json()["errors"]] == [(1, "data.severity")]
    assert await redis.xlen(streams.ALERTS) == 2


async def test_binary_mode_errors_name_the_header(api: httpx.AsyncClient) -> None:
    message = ce_http.to_binary_event(_sdk(factories.alert()))
    headers = {**message.headers, "ce-source": "/units/blo oybek"}
    response = await _post(api, message.body, headers)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["ce-source"]

    data = json.loads(message.body)
    del data["summary"]
    response = await _post(api, json.dumps(data).encode(), message.headers)
    assert [e["field"] for e in response.json()["errors"]] == ["data.summary"]


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "no Content-Type"),
        ({}, "binary mode"),
        ({"content-type": "text/plain"}, "binary mode"),
        ({"content-type": "text/plain"}, "text/plain"),
        (
            {"content-type": "application/x-www-form-urlencoded"},
            "application/x-www-form-urlencoded",
        ),
        ({"content-type": "application/json; charset=latin-1"}, "only UTF-8"),
        ({"content-type": "application/xml", "ce-id": "x"}, "in binary mode the body is data"),
    ],
)
async def test_other_media_types_are_415(
    api: httpx.AsyncClient, headers: dict[str, str], detail: str
) -> None:
    response = await _post(api, json.dumps(factories.alert()).encode(), headers)
    assert response.status_code == 415
    assert response.headers["content-type"] == "application/problem+json"
    assert detail in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "detail"),
    [
        (b'{"id": "\xff"}', "application/json", 400, "not UTF-8"),
        (b"[" * 100_000, "application/json", 400, "nested too deeply"),
        (b'{"quantity": NaN}', "application/json", 400, "NaN is not JSON"),
        (b'{"detained": ' + b"9" * 5000 + b"}", "application/json", 400, "4300 digits"),
        (b"[]", "application/cloudevents+json", 422, "carries one event object"),
        (b"{}", "application/cloudevents-batch+json", 422, "carries an array"),
    ],
)
async def test_bodies_that_are_not_events_are_refused_clearly(
    api: httpx.AsyncClient, redis: Redis, body: bytes, content_type: str, status: int, detail: str
) -> None:
    response = await _post(api, body, {"content-type": content_type})
    assert response.status_code == status
    assert detail in response.text
    assert await redis.xlen(streams.ALERTS) == 0


@pytest.mark.parametrize(
    ("field", "replace"),
    [
        ("data.summary", ('"KAMAZ', '"\\ud800KAMAZ')),  # free text
        ("data.route.0", ('"TJ"', '"\\udcff"')),  # a pattern-checked code
        ("data.severity", ('"urgent"', '"\\udfff"')),  # a vocabulary
    ],
)
async def test_a_lone_surrogate_escape_is_a_located_422(
    api: httpx.AsyncClient, redis: Redis, field: str, replace: tuple[str, str]
) -> None:
    body = json.dumps(factories.alert()).replace(*replace, 1)
    response = await api.post(
        "/v1/events", content=body,
        headers={**auth("customs"), "Content-Type": "application/cloudevents+json"},
    )  # fmt: skip
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert await redis.xlen(streams.ALERTS) == 0
