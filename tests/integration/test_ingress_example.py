"""examples/ingress/publish.py, run as an agency would, against a runtime configured with
examples/liaison.yaml: every example event reaches the ledger, nothing is dead-lettered."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path

import pytest

from services.bootstrap import Runtime
from services.core.config import read_file_config
from services.core.settings import Settings
from services.ingest import dlq
from services.ledger.scan import Query
from tests.integration.conftest import eventually

EXAMPLES = Path(__file__).parents[2] / "examples"
SCRIPT = EXAMPLES / "ingress" / "publish.py"


@pytest.fixture
async def example_runtime(redis_url: str, data_dir: Path) -> AsyncIterator[Runtime]:
    """Ingest, ledger and notifier configured by the example configuration file."""
    settings = Settings(data_dir=data_dir, redis_url=redis_url, database_url=None, config=None)
    async with Runtime(settings, read_file_config(EXAMPLES / "liaison.yaml")) as running:
        yield running


def _publish(redis_url: str, publisher: str, *files: Path) -> list[str]:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), redis_url, publisher, *map(str, files), "--fsync"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.splitlines()


async def test_the_ingress_example_publishes_every_example_event(
    example_runtime: Runtime, redis_url: str
) -> None:
    events = EXAMPLES / "events"
    by_publisher = {  # each publisher of the example configuration, its own units' events
        "uz-customs": ["alert.raised", "alert.updated", "alert.closed", "alert.cancelled"],
        "uz-mia": ["seizure.reported"],
    }
    for publisher, names in by_publisher.items():
        lines = await asyncio.to_thread(
            _publish, redis_url, publisher, *(events / f"{n}.json" for n in names)
        )
        assert all(line.startswith(f"{{liaison}}:stream:ingress:{publisher} ") for line in lines)
    expected = {
        json.loads((events / f"{n}.json").read_text())["id"]
        for names in by_publisher.values()
        for n in names
    }

    async def recorded() -> bool:
        async with aclosing(example_runtime.ledger.entries(Query())) as entries:
            return {entry.event["id"] async for entry in entries} >= expected

    await eventually(recorded)
    assert await dlq.count(example_runtime.redis) == 0
