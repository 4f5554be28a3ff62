"""The access record in the console: the alert page records the read before it shows persons
(with the purpose of the form), asks for a purpose first when one is required, and auditors
read the record on the "Access record" page, in their language (issue 20)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from schemas.alerts import AlertRef
from services.bootstrap import Runtime
from services.core.auth import token_digest
from services.core.settings import Settings
from services.entrypoints.http import create_app
from services.ledger.access_store import AccessStore
from tests import factories
from tests.integration.conftest import TOKENS, auth, eventually, principals_config
from tests.integration.console_client import sign_in

UNIT = "IMT-GULISTAN"


@pytest.fixture
async def console(
    request: pytest.FixtureRequest, redis_url: str, data_dir: Path
) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient, str]]:
    settings = Settings(data_dir=data_dir, redis_url=redis_url, database_url=None, config=None,
                        metrics_token_sha256=token_digest(TOKENS["metrics"]),
                        access_purpose=getattr(request, "param", "optional"))  # fmt: skip
    async with Runtime(settings, principals_config()) as running:
        transport = httpx.ASGITransport(app=create_app(running.deps()), client=("127.0.0.1", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://liaison") as client:
            yield running, client, settings.access_purpose


async def _records(runtime: Runtime) -> list[dict[str, Any]]:
    return [e["record"] for e in await AccessStore(runtime.ledger.engine).latest(100)]


@pytest.mark.parametrize("console", ["optional", "required"], indirect=True)
async def test_the_alert_page_records_the_read_and_asks_a_purpose_when_required(
    console: tuple[Runtime, httpx.AsyncClient, str],
) -> None:
    runtime, client, mode = console
    alert = factories.alert()
    assert (await client.post("/v1/events", json=alert, headers=auth("customs"))).status_code == 202

    async def delivered() -> bool:
        return await runtime.api_inbox.get(UNIT, alert_ref(alert)) is not None

    await eventually(delivered)
    await sign_in(client, "gulistan")
    page = f"/console/units/{UNIT}/alerts/{alert['id']}"
    first = await client.get(page)
    if mode == "required":
        assert first.status_code == 428
        assert 'name="purpose"' in first.text
        assert "Example Driver" not in first.text
        assert "P-0000" not in first.text
    else:
        assert first.status_code == 200
        assert "Example Driver" in first.text
    shown = await client.get(page, params={"purpose": "case 2026/114"})
    assert shown.status_code == 200
    assert "Example Driver" in shown.text

    async def recorded() -> bool:
        return any(r["purpose"] == "case 2026/114" for r in await _records(runtime))

    await eventually(recorded)
    mine = [r for r in await _records(runtime) if r["channel"] == "console.alert"]
    assert len(mine) == (2 if mode == "optional" else 1)  # the form showed nobody
    assert {r["principal"] for r in mine} == {"gulistan-duty"}


async def test_auditors_read_the_access_record_page_in_their_language(
    console: tuple[Runtime, httpx.AsyncClient, str],
) -> None:
    runtime, client, _ = console
    alert = factories.alert()
    assert (await client.post("/v1/events", json=alert, headers=auth("customs"))).status_code == 202

    async def recorded() -> bool:
        await client.get(
            f"/v1/units/{UNIT}/alerts", headers=auth("gulistan"), params={"purpose": "case 7"}
        )
        return any(r["purpose"] == "case 7" for r in await _records(runtime))

    await eventually(recorded)
    await sign_in(client, "auditor", locale="ru")
    page = await client.get("/console/access")
    assert page.status_code == 200
    assert "Журнал доступа" in page.text
    assert "gulistan-duty" in page.text
    assert "case 7" in page.text
    assert "Цепочка доступа в порядке" in page.text
    assert "P-0000" not in page.text


def alert_ref(alert: dict[str, Any]) -> AlertRef:
    return AlertRef(alert["source"].removeprefix("/units/"), alert["id"])
