"""A throwaway PostgreSQL cluster (``initdb``/``pg_ctl`` from PATH), for benchmarks and tests.

``fsync`` stays on by default: the benchmark measures durable commits, as
SQLite's ``synchronous=FULL`` does; the tests turn it off. Runs as the
``postgres`` system user when root (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL binaries here; the message says what is missing."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _run(args: list[str], user: str | None) -> None:
    command = ["runuser", "-u", user, "--", *args] if user else args
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {result.stderr or result.stdout}")


def _system_user() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresUnavailable("running as root and there is no 'postgres' user") from None
    return "postgres"


def missing() -> str | None:
    """Why no throwaway cluster can start here, or None when it can."""
    if not shutil.which("initdb") or not shutil.which("pg_ctl"):
        return "initdb/pg_ctl not on PATH"
    try:
        _system_user()
    except PostgresUnavailable as exc:
        return str(exc)
    return None


@contextmanager
def postgres_cluster(*, fsync: bool = True) -> Iterator[str]:
    """Start a cluster on a free loopback port; yield the URL of its ``postgres`` database."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if not initdb or not pg_ctl:
        raise PostgresUnavailable("initdb/pg_ctl not on PATH: install PostgreSQL server binaries")
    user = _system_user()
    root = Path(tempfile.mkdtemp(prefix="liaison-bench-pg-"))
    data = root / "data"
    if user:
        shutil.chown(root, user)
    port = _free_port()
    _run(
        [initdb, "-D", str(data), "-U", "liaison", "--auth=trust", "-E", "UTF8", "--no-sync"], user
    )
    options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root}"
    if not fsync:
        options += " -c fsync=off"
    start = [pg_ctl, "-D", str(data), "-o", options, "-w", "-t", "60", "-l", str(root / "log")]
    _run([*start, "start"], user)
    try:
        yield f"postgresql+asyncpg://liaison@127.0.0.1:{port}/postgres"
    finally:
        _run([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"], user)
        shutil.rmtree(root, ignore_errors=True)


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def create_database(url: str, name: str) -> str:
    """Create database ``name`` on the server of ``url``; return its URL."""
    conn = await asyncpg.connect(_dsn(url))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return url.rsplit("/", 1)[0] + f"/{name}"


async def server_version(url: str) -> str:
    """``PostgreSQL 15.18`` (``SHOW server_version``), fsync state included."""
    conn = await asyncpg.connect(_dsn(url))
    try:
        version = await conn.fetchval("SHOW server_version")
        fsync = await conn.fetchval("SHOW fsync")
    finally:
        await conn.close()
    return f"PostgreSQL {version} (fsync={fsync})"
