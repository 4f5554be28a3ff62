"""Strict durability: a publisher is told "accepted" only once the server fsynced the events.

What a power cut would take cannot be staged on loopback; what can be shown
is that in strict mode the acknowledgement waits for the server's own
confirmation (``WAITAOF``) and that, where the server cannot give it, the
publisher gets a 503 to retry — never a 202.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from services.bootstrap import Runtime
from services.core import streams
from services.core.redis_server import EmbeddedRedis
from services.core.settings import Settings
from services.entrypoints.http import create_app
from tests import factories
from tests.e2e.test_cli import LIAISON
from tests.integration.conftest import auth, eventually, principals_config

SAMPLES = resources.files("services.ingest.adapters") / "samples"


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


@pytest.mark.parametrize("durability", ["standard", "strict"])
async def test_while_the_server_is_away_a_publish_is_503_retry_after_1_then_accepted(
    server: EmbeddedRedis, data_dir: Path, durability: str
) -> None:
    """docs/guarantees.md: "While the server is away, ``POST /v1/events`` answers 503 with
    ``Retry-After: 1``; re-sending is safe" — not a 500, not a hang."""
    event = factories.seizure()
    async with _ingest(server.url, data_dir, durability) as (_, api):
        server.kill()
        refused = await api.post("/v1/events", json=event, headers=auth("mia"))
        assert refused.status_code == 503, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["retry-after"] == "1"
        server.start()

        async def accepted() -> bool:
            response = await api.post("/v1/events", json=event, headers=auth("mia"))
            assert response.status_code in (202, 503), response.text
            return response.status_code == 202

        await eventually(accepted, timeout=30)


async def _blocked_in_waitaof(admin: Redis) -> bool:
    """Whether a client of the server is blocked in ``WAITAOF``, waiting for an fsync."""
    return any(c["cmd"] == "waitaof" and "b" in c["flags"] for c in await admin.client_list())


async def test_a_strict_202_comes_only_once_the_server_fsynced(
    server: EmbeddedRedis, data_dir: Path
) -> None:
    """The 202 waits for the fsync itself: with ``appendfsync no`` the server fsyncs nothing
    until told to, and the publish waits in ``WAITAOF`` — its events already in the stream —
    until an fsync happens."""
    admin = Redis.from_url(server.url)
    await admin.config_set("appendfsync", "no")
    event = factories.seizure()
    try:
        async with _ingest(server.url, data_dir, "strict") as (_, api):
            posting = asyncio.create_task(api.post("/v1/events", json=event, headers=auth("mia")))
            await eventually(lambda: _blocked_in_waitaof(admin))
            assert await admin.xlen(streams.SEIZURES) == 1  # written,
            assert not posting.done()  # not acknowledged: its fsync is outstanding
            await admin.config_set("appendfsync", "always")
            await admin.set("next-write", "fsynced, and everything before it")
            response = await posting
    finally:
        await admin.aclose()
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == [event["id"]]


async def test_a_strict_publish_not_fsynced_within_5_s_is_a_503_and_safe_to_resend(
    server: EmbeddedRedis, data_dir: Path
) -> None:
    admin = Redis.from_url(server.url)
    await admin.config_set("appendfsync", "no")
    event = factories.seizure()
    try:
        async with _ingest(server.url, data_dir, "strict") as (_, api):
            refused = await api.post("/v1/events", json=event, headers=auth("mia"))
            assert refused.status_code == 503, refused.text
            assert refused.headers["retry-after"] == "1"
            assert "fsync" not in refused.text  # a problem document, not the server's words
            await admin.config_set("appendfsync", "always")
            resent = await api.post("/v1/events", json=event, headers=auth("mia"))
    finally:
        await admin.aclose()
    assert resent.status_code == 202, resent.text
    assert resent.json()["duplicates"] == [event["id"]]  # written the first time, confirmed now


def _import(server: EmbeddedRedis, data_dir: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIAISON_")}
    env |= {
        "LIAISON_REDIS_URL": server.url,
        "LIAISON_DATA_DIR": str(data_dir),
        "LIAISON_DURABILITY": "strict",
    }
    command = [LIAISON, "import", "--adapter", "customs-csv", str(SAMPLES / "scc-seizures.csv")]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


async def test_a_strict_import_finishes_only_once_the_server_fsynced(
    server: EmbeddedRedis, data_dir: Path
) -> None:
    admin = Redis.from_url(server.url)
    await admin.config_set("appendfsync", "no")

    async def written_and_waiting() -> bool:
        return await admin.xlen(streams.SEIZURES) == 8 and await _blocked_in_waitaof(admin)

    with _import(server, data_dir) as process:
        try:
            await eventually(written_and_waiting, timeout=30)
            assert process.poll() is None  # still waiting for the fsync
            await admin.config_set("appendfsync", "always")
            await admin.set("next-write", "fsynced, and everything before it")
            out, err = await asyncio.to_thread(process.communicate, timeout=30)
        finally:
            process.kill()
            await admin.aclose()
    assert process.returncode == 0, out + err
    assert "8 rows: 8 published, 0 duplicates, 0 rejected" in out


async def test_a_strict_import_the_server_cannot_confirm_says_so_in_one_line(
    server: EmbeddedRedis, data_dir: Path
) -> None:
    admin = Redis.from_url(server.url)
    await admin.config_set("appendfsync", "no")
    with _import(server, data_dir) as process:
        try:
            out, err = await asyncio.to_thread(process.communicate, timeout=60)
            await admin.config_set("appendfsync", "always")
        finally:
            process.kill()
            await admin.aclose()
    assert process.returncode == 1, out + err
    assert "Traceback" not in err
    [line] = err.strip().splitlines()
    assert "did not fsync within 5000 ms" in line
    assert "run the import again" in line
    with _import(server, data_dir) as again:
        out, err = await asyncio.to_thread(again.communicate, timeout=60)
    assert again.returncode == 0, out + err
    assert "8 rows: 0 published, 8 duplicates, 0 rejected" in out  # nothing published twice
