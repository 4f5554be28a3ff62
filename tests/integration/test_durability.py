"""Strict durability: a publisher is told "accepted" only once the server fsynced the events.

What a power cut would take cannot be staged on loopback; what can be shown
is that in strict mode the acknowledgement waits for the server's own
confirmation (``WAITAOF``) and that, where the server cannot give it, the
publisher gets a 503 to retry — never a 202.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from services.bootstrap import Runtime
from services.core.redis_server import EmbeddedRedis
from services.core.settings import Settings
from services.entrypoints.http import create_app
from tests import factories
from tests.integration.conftest import auth, principals_config


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A server of this test's own (its persistence settings are changed)."""
    with EmbeddedRedis(tmp_path / "redis") as running:
        yield running


@asynccontextmanager
async def _ingest(redis_url: str | None, data_dir: Path, durability: str) -> AsyncIterator[
    tuple[Runtime, httpx.AsyncClient]
]:  # fmt: skip
    settings = Settings(data_dir=data_dir, redis_url=redis_url, durability=durability)
    async with Runtime(settings, principals_config(), services=("ingest",)) as runtime:
        transport = httpx.ASGITransport(app=create_app(runtime.deps()))
        async with httpx.AsyncClient(transport=transport, base_url="http://liaison") as api:
            yield runtime, api


async def test_strict_mode_refuses_to_acknowledge_what_the_server_cannot_fsync(
    server: EmbeddedRedis, data_dir: Path
) -> None:
    admin = Redis.from_url(server.url)
    await admin.config_set("appendonly", "no")
    event = factories.seizure()
    async with _ingest(server.url, data_dir, "strict") as (_, api):
        refused = await api.post("/v1/events", json=event, headers=auth("mia"))
        assert refused.status_code == 503, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["retry-after"] == "1"
        await admin.config_set("appendonly", "yes")  # the operator puts the AOF back
        retried = await api.post("/v1/events", json=event, headers=auth("mia"))
    await admin.aclose()
    assert retried.status_code == 202, retried.text
    assert event["id"] in retried.json()["accepted"] + retried.json()["duplicates"]


async def test_standard_mode_acknowledges_without_waiting_for_fsync(
    server: EmbeddedRedis, data_dir: Path
) -> None:
    admin = Redis.from_url(server.url)
    await admin.config_set("appendonly", "no")
    await admin.aclose()
    async with _ingest(server.url, data_dir, "standard") as (_, api):
        response = await api.post("/v1/events", json=factories.seizure(), headers=auth("mia"))
    assert response.status_code == 202, response.text


@pytest.mark.parametrize(("durability", "appendfsync"), [("standard", "everysec"),
                                                          ("strict", "always")])  # fmt: skip
async def test_the_embedded_server_fsyncs_as_the_mode_says(
    data_dir: Path, durability: str, appendfsync: str
) -> None:
    async with _ingest(None, data_dir, durability) as (runtime, api):
        config = await runtime.redis.config_get("appendfsync")
        response = await api.post("/v1/events", json=factories.seizure(), headers=auth("mia"))
    assert config == {"appendfsync": appendfsync}
    assert response.status_code == 202, response.text
