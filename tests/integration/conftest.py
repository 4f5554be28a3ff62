"""A whole Liaison Exchange runtime on the session's real server, per test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from redis.asyncio import Redis

from services.bootstrap import Runtime
from services.core import streams
from services.core.auth import token_digest
from services.core.config import FileConfig, Principal, Role
from services.core.settings import Settings
from services.entrypoints.http import create_app
from services.ledger.witness import WitnessKey

TOKENS = {
    "customs": "customs-token",
    "mia": "mia-token",
    "gulistan": "gulistan-officer-token",
    "tashkent": "tashkent-officer-token",
    "auditor": "auditor-token",
    "metrics": "metrics-token",  # not a principal: LIAISON_METRICS_TOKEN_SHA256
    "witness": "witness-token",
}
WITNESS_SEED = b"niac-witness-test-seed-32-bytes!"
"""The test witness's Ed25519 private key (its vkey is the witness principal's)."""


def witness_vkey() -> str:
    """The C2SP vkey of the test witness, ``niac.uz/witness``."""
    key = Ed25519PrivateKey.from_private_bytes(WITNESS_SEED).public_key()
    return WitnessKey("niac.uz/witness", key).vkey()


def principals_config() -> FileConfig:
    """One principal of every role."""
    return FileConfig(
        principals=(
            Principal(name="uz-customs", role=Role.PUBLISHER, token_sha256=token_digest(TOKENS["customs"]),
                      units=("BLO-OYBEK", "BLO-AYRITOM")),
            Principal(name="uz-mia", role=Role.PUBLISHER, token_sha256=token_digest(TOKENS["mia"]),
                      units=("IMT-GULISTAN",)),
            Principal(name="gulistan-duty", role=Role.OFFICER,
                      token_sha256=token_digest(TOKENS["gulistan"]), unit="IMT-GULISTAN"),
            Principal(name="tashkent-duty", role=Role.OFFICER,
                      token_sha256=token_digest(TOKENS["tashkent"]), unit="IMT-TASHKENT"),
            Principal(name="audit-office", role=Role.AUDITOR, token_sha256=token_digest(TOKENS["auditor"])),
            Principal(name="niac-witness", role=Role.WITNESS, token_sha256=token_digest(TOKENS["witness"]),
                      witness_key=witness_vkey()),
        )
    )  # fmt: skip


def auth(who: str) -> dict[str, str]:
    """The Authorization header of a test principal."""
    return {"Authorization": f"Bearer {TOKENS[who]}"}


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Wait until ``check`` holds, failing the test at the deadline."""
    try:
        async with asyncio.timeout(timeout):
            while not await check():
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(f"condition not met within {timeout}s: {check.__qualname__}")


async def seen_index(redis: Redis) -> dict[bytes, bytes]:
    """``source id`` → stream entry id of every event published (every live dedupe window)."""
    index: dict[bytes, bytes] = {}
    async for key in redis.scan_iter(match=f"{streams.SEEN}:*", count=1000):
        index.update(await redis.hgetall(key))  # type: ignore[misc]
    return index


@pytest.fixture
async def runtime(redis_url: str, data_dir: Path) -> AsyncIterator[Runtime]:
    """Ingest, ledger (SQLite) and notifier on the session's server."""
    settings = Settings(
        data_dir=data_dir,
        redis_url=redis_url,
        database_url=None,
        config=None,
        metrics_token_sha256=token_digest(TOKENS["metrics"]),
    )
    async with Runtime(settings, principals_config()) as running:
        yield running


@pytest.fixture
async def api(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the runtime's API (in-process ASGI transport)."""
    transport = httpx.ASGITransport(app=create_app(runtime.deps()))
    async with httpx.AsyncClient(transport=transport, base_url="http://liaison") as client:
        yield client
