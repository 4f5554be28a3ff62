"""The access record on the real server: every read that shows personal data through the API
is recorded — principal, person, channel, purpose, events, persons — before it is answered;
the purpose is mandatory when the settings say so (428); reads that show nobody are not
recorded (issue 20)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.bootstrap import Runtime
from services.core import streams
from services.core.access import PersonIndex
from services.core.auth import token_digest
from services.core.settings import Settings
from services.entrypoints.http import create_app
from services.ledger.access_store import AccessStore
from tests import factories
from tests.integration.conftest import TOKENS, auth, eventually, principals_config


async def _access(runtime: Runtime) -> list[dict[str, Any]]:
    return [e["record"] for e in reversed(await AccessStore(runtime.ledger.engine).latest(100))]


async def _recorded_somewhere(runtime: Runtime) -> int:
    """Records in the stream (not yet appended, or not yet trimmed) or in the chain."""
    in_stream = await runtime.redis.xrange(streams.ACCESS)
    ids = {e[1][streams.EVENT_FIELD.encode()] for e in in_stream}
    return len(ids) + len(await _access(runtime))


async def _delivered(api: httpx.AsyncClient, alert: dict[str, Any], who: str, unit: str) -> None:
    async def arrived() -> bool:
        page = await api.get(
            f"/v1/units/{unit}/alerts", headers=auth(who), params={"purpose": "poll"}
        )
        return alert["id"] in page.text

    await eventually(arrived)


async def test_an_officers_read_of_persons_is_recorded_before_it_is_answered(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    alert = factories.alert()  # a person with document P-0000; IMT-GULISTAN sees it in full
    assert (await api.post("/v1/events", json=alert, headers=auth("customs"))).status_code == 202
    await _delivered(api, alert, "gulistan", "IMT-GULISTAN")
    before = await _recorded_somewhere(runtime)
    page = await api.get(
        "/v1/units/IMT-GULISTAN/alerts",
        headers=auth("gulistan"),
        params={"purpose": "case 2026/114"},
    )
    assert page.status_code == 200
    assert "P-0000" in page.text
    assert await _recorded_somewhere(runtime) >= before + 1  # durable before the answer

    async def appended() -> bool:
        return any(r["purpose"] == "case 2026/114" for r in await _access(runtime))

    await eventually(appended)
    [record] = [r for r in await _access(runtime) if r["purpose"] == "case 2026/114"]
    index = PersonIndex.at(runtime.settings.access_index_key_path, create=False)
    assert record["principal"] == "gulistan-duty"
    assert record["role"] == "officer"
    assert record["channel"] == "api.inbox"
    assert record["unit"] == "IMT-GULISTAN"
    assert record["events"] == [[alert["source"], alert["id"]]]
    assert record["persons"] == [index.digest("P-0000")]
    assert "P-0000" not in str(record)
    assert "Example Driver" not in str(record)
    assert (await AccessStore(runtime.ledger.engine).verify()).ok


async def test_a_non_nominal_read_and_an_empty_inbox_are_not_recorded(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    alert = factories.alert()  # BLO-FOTEHOBOD (TJ) gets the non-nominal view
    assert (await api.post("/v1/events", json=alert, headers=auth("customs"))).status_code == 202
    await _delivered(api, alert, "auditor", "BLO-FOTEHOBOD")
    baseline = await _recorded_somewhere(runtime)
    for unit in ("BLO-FOTEHOBOD", "IMT-NUKUS"):
        assert (
            await api.get(f"/v1/units/{unit}/alerts", headers=auth("auditor"))
        ).status_code == 200
    assert await _recorded_somewhere(runtime) == baseline


async def test_an_auditors_ledger_page_with_persons_is_recorded(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    alert = factories.alert()
    assert (await api.post("/v1/events", json=alert, headers=auth("customs"))).status_code == 202

    async def in_ledger() -> bool:
        return await runtime.ledger.count() >= 1

    await eventually(in_ledger)
    page = await api.get(
        "/v1/ledger/events", headers=auth("auditor"), params={"purpose": "audit 7"}
    )
    assert page.status_code == 200

    async def appended() -> bool:
        return any(r["channel"] == "api.ledger.events" for r in await _access(runtime))

    await eventually(appended)
    [record] = [r for r in await _access(runtime) if r["channel"] == "api.ledger.events"]
    assert (record["principal"], record["purpose"]) == ("audit-office", "audit 7")
    assert [alert["source"], alert["id"]] in record["events"]


@pytest.fixture
async def strict_purpose(
    redis_url: str, data_dir: Path
) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    settings = Settings(data_dir=data_dir, redis_url=redis_url, database_url=None, config=None,
                        metrics_token_sha256=token_digest(TOKENS["metrics"]),
                        access_purpose="required")  # fmt: skip
    async with Runtime(settings, principals_config()) as running:
        transport = httpx.ASGITransport(app=create_app(running.deps()))
        async with httpx.AsyncClient(transport=transport, base_url="http://liaison") as client:
            yield running, client


async def test_a_required_purpose_is_asked_for_with_a_428(
    strict_purpose: tuple[Runtime, httpx.AsyncClient],
) -> None:
    runtime, api = strict_purpose
    empty = await api.get("/v1/units/IMT-GULISTAN/alerts", headers=auth("gulistan"))
    assert empty.status_code == 200  # nothing personal shown: no purpose needed
    alert = factories.alert()
    assert (await api.post("/v1/events", json=alert, headers=auth("customs"))).status_code == 202
    await _delivered(api, alert, "gulistan", "IMT-GULISTAN")
    refused = await api.get("/v1/units/IMT-GULISTAN/alerts", headers=auth("gulistan"))
    assert refused.status_code == 428
    assert refused.headers["content-type"] == "application/problem+json"
    assert "purpose" in refused.json()["detail"]
    assert "P-0000" not in refused.text
    blank = await api.get(
        "/v1/units/IMT-GULISTAN/alerts", headers=auth("gulistan"), params={"purpose": "  "}
    )
    assert blank.status_code == 428
    bad = await api.get(
        "/v1/units/IMT-GULISTAN/alerts", headers=auth("gulistan"), params={"purpose": "x\ny"}
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "query.purpose"

    async def in_ledger() -> bool:
        return await runtime.ledger.count() >= 1

    await eventually(in_ledger)
    events = await api.get("/v1/ledger/events", headers=auth("auditor"))
    assert events.status_code == 428
    allowed = await api.get(
        "/v1/ledger/events", headers=auth("auditor"), params={"purpose": "audit 7"}
    )
    assert allowed.status_code == 200
