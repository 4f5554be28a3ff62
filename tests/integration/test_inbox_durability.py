"""Inboxes are durable: they survive a notifier restart and a SIGKILLed Redis (AOF)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from services.bootstrap import Runtime
from services.core.redis_server import EmbeddedRedis
from services.core.settings import Settings
from services.entrypoints.http import create_app
from tests import factories
from tests.integration.conftest import auth, eventually, principals_config

RECIPIENTS = ("IMT-TASHKENT", "IMT-GULISTAN", "BLO-FOTEHOBOD", "NIAC-UZ")


@asynccontextmanager
async def _liaison(redis_url: str, data_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(data_dir=data_dir, redis_url=redis_url, database_url=None, config=None)
    async with Runtime(settings, principals_config()) as runtime:
        transport = httpx.ASGITransport(app=create_app(runtime.deps()))
        async with httpx.AsyncClient(transport=transport, base_url="http://liaison") as api:
            yield api


async def _inbox(api: httpx.AsyncClient, unit: str) -> list[dict[str, Any]]:
    response = await api.get(f"/v1/units/{unit}/alerts", headers=auth("auditor"))
    assert response.status_code == 200
    alerts: list[dict[str, Any]] = response.json()["alerts"]
    return alerts


async def test_inboxes_survive_a_notifier_restart_and_a_sigkilled_server(
    tmp_path: Path, data_dir: Path
) -> None:
    alert = factories.alert()
    server = EmbeddedRedis(tmp_path / "redis")
    try:
        async with _liaison(server.start(), data_dir) as api:
            await api.post("/v1/events", json=alert, headers=auth("customs"))

            async def everyone_has_it() -> bool:
                return all([len(await _inbox(api, unit)) == 1 for unit in RECIPIENTS])

            await eventually(everyone_has_it)
            ack = f"/v1/units/IMT-GULISTAN/alerts/{alert['id']}/ack"
            assert (await api.post(ack, headers=auth("gulistan"))).status_code == 200
        server.kill()  # SIGKILL: no shutdown save; only the append-only file remains

        async with _liaison(server.start(), data_dir) as api:
            for unit in RECIPIENTS:
                [entry] = await _inbox(api, unit)
                assert entry["alert_id"] == alert["id"]
            [gulistan] = await _inbox(api, "IMT-GULISTAN")
            assert gulistan["acknowledged_by"] == "gulistan-duty"
            assert (await _inbox(api, "BLO-FOTEHOBOD"))[0]["view"] == "non-nominal"

            again = await api.post("/v1/events", json=alert, headers=auth("customs"))
            assert again.json()["duplicates"] == [alert["id"]]
            closed = factories.event("alert.closed", "BLO-OYBEK", {"reason": "seized"},
                                     subject=alert["id"], releasableto="UZ,TJ")  # fmt: skip
            await api.post("/v1/events", json=closed, headers=auth("customs"))

            async def all_closed() -> bool:  # the recipient list survived too
                return all([(await _inbox(api, u))[0]["state"] == "closed" for u in RECIPIENTS])

            await eventually(all_closed)
            for unit in RECIPIENTS:
                assert len(await _inbox(api, unit)) == 1
    finally:
        server.stop()
