"""Full disks (issue 21): the server's AOF volume fills up, then space returns.

The server keeps its append-only file on a small tmpfs of its own (mounted by the test: it
needs root, as CI runs; elsewhere the test skips, saying so loudly). A publisher publishes
until the volume is full: from then on it gets 503 with ``Retry-After`` (never a 500),
readiness fails ``intake``; once the volume is made larger the intake opens again by itself,
and every event that got its 202 is in the ledger.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.bootstrap import Runtime
from services.core.auth import token_digest
from services.core.redis_server import EmbeddedRedis
from services.core.settings import Settings
from services.entrypoints.http import create_app
from tests import factories
from tests.integration.conftest import TOKENS, auth, eventually, principals_config

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs, unmounted afterwards."""
    if os.geteuid() != 0:
        message = "FULL-DISK TIER SKIPPED — mounting a small volume needs root"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    mount = tmp_path / "volume"
    mount.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mount)], check=True
    )
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


async def test_a_full_aof_volume_answers_503_and_resumes_when_space_returns(
    small_volume: Path, data_dir: Path
) -> None:
    with EmbeddedRedis(small_volume / "redis") as server:
        settings = Settings(
            data_dir=data_dir,
            redis_url=server.url,
            database_url=None,
            config=None,
            metrics_token_sha256=token_digest(TOKENS["metrics"]),
        )
        numbers = itertools.count()
        accepted: set[str] = set()
        async with Runtime(settings, principals_config()) as runtime:
            transport = httpx.ASGITransport(app=create_app(runtime.deps()))
            async with httpx.AsyncClient(transport=transport, base_url="http://liaison") as api:

                async def publish() -> httpx.Response:
                    batch = [
                        factories.seizure("IMT-GULISTAN", id=f"DISK-{next(numbers)}")
                        for _ in range(100)
                    ]
                    for event in batch:
                        event["data"]["concealment"] = "x" * 1500
                    response = await api.post("/v1/events", json=batch, headers=auth("mia"))
                    if response.status_code == 202:
                        accepted.update(response.json()["accepted"])
                    return response

                refused = None
                for _ in range(200):  # ~300 KB a request: the 4 MiB fill within a few dozen
                    response = await publish()
                    if response.status_code != 202:
                        refused = response
                        break
                assert refused is not None, "the volume never filled"
                assert refused.status_code == 503, refused.text
                assert refused.headers["retry-after"]
                assert refused.headers["content-type"] == "application/problem+json"

                async def intake_closed() -> bool:  # once back-pressure reads the server again
                    ready = await api.get("/readyz", headers=auth("metrics"))
                    return ready.status_code == 503 and ready.json()["checks"]["intake"] is False

                await eventually(intake_closed)
                response = await publish()
                assert response.status_code == 503
                assert "cannot write its append-only file" in response.json()["detail"]

                grow = ["mount", "-o", "remount,size=256m", str(small_volume)]
                await asyncio.to_thread(subprocess.run, grow, check=True)  # space returns

                async def open_again() -> bool:
                    return (await publish()).status_code == 202

                await eventually(open_again, timeout=60)

                async def recorded() -> bool:
                    return await runtime.ledger.count() >= len(accepted)

                await eventually(recorded, timeout=60)
                ids = {entry.event["id"] async for entry in runtime.ledger.entries()}
                assert accepted <= ids  # nothing acknowledged lost
