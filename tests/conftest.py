"""Test tiers and their servers.

* ``tests/unit`` — no I/O.
* ``tests/integration`` — a real Redis-compatible server (one per session,
  emptied before each test) and real SQLite; PostgreSQL where a test asks.
* ``tests/e2e`` — the ``liaison`` command as a user runs it.
* ``tests/browser`` — the web console in Debian's Chromium.

Each test is marked with its folder's tier (``-m unit``, ``-m integration``, ``-m e2e``,
``-m browser``); the long multi-process fault tests are also marked ``slow`` in their files
(``-m "not slow"`` leaves them out). docs/testing.md lists the commands.

``LIAISON_TEST_REDIS_URL`` points the suite at an existing server instead of
the embedded one (it will be FLUSHALLed).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from services.core.redis_server import EmbeddedRedis

TIERS = ("unit", "integration", "e2e", "browser")
"""The folders under tests/, each a marker of the same name."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test with the tier of the folder it lives in."""
    root = Path(__file__).parent
    for item in items:
        tier = item.path.relative_to(root).parts[0]
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real server for the whole session."""
    external = os.environ.get("LIAISON_TEST_REDIS_URL")
    if external:
        yield external
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
async def redis_url(redis_server_url: str) -> AsyncIterator[str]:
    """The session's server, empty at the start of each test."""
    client = Redis.from_url(redis_server_url)
    try:
        await client.flushall()
    finally:
        await client.aclose()
    return redis_server_url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """A client of the (emptied) session server."""
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A fresh data directory."""
    path = tmp_path / "var"
    path.mkdir()
    return path
