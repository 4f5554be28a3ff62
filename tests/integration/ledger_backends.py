"""The ledger's backends for contract tests: a SQLite file, or a fresh PostgreSQL database."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import NoReturn

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.support.pg import PostgresUnavailable, postgres_cluster


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throwaway cluster for the session (or ``LIAISON_TEST_DATABASE_URL``)."""
    external = os.environ.get("LIAISON_TEST_DATABASE_URL")
    if external:
        yield external
        return
    try:
        with postgres_cluster(fsync=False) as url:  # tests need no durable commits
            yield url
    except PostgresUnavailable as exc:
        no_postgres(exc)


def no_postgres(exc: PostgresUnavailable) -> NoReturn:
    """Fail under CI (it must run the PostgreSQL tier); elsewhere skip, saying so loudly."""
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the PostgreSQL tier: {exc}")
    pytest.skip(f"PostgreSQL TIER SKIPPED — {exc}")


async def fresh_postgres_database(server_url: str) -> str:
    """Create an empty database on the server; return its URL."""
    name = f"ledger_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}"
