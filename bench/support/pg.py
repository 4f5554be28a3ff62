"""A throwaway PostgreSQL cluster (``initdb``/``pg_ctl`` from PATH), for benchmarks and tests.

``fsync`` stays on by default: the benchmark measures durable commits, as
SQLite's ``synchronous=FULL`` does; the tests turn it off. Runs as the
``postgres`` system user when root (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]

from services.core.redis_server import free_port


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL binaries here; the message says what is missing."""


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


@dataclass
class PostgresCluster:
    """A cluster in a temporary directory on a free loopback port; stop and start it at will."""

    fsync: bool = True
    root: Path = field(init=False)
    port: int = field(init=False)
    user: str | None = field(init=False)

    def __post_init__(self) -> None:
        initdb = shutil.which("initdb")
        if not initdb or not shutil.which("pg_ctl"):
            raise PostgresUnavailable(
                "initdb/pg_ctl not on PATH: install PostgreSQL server binaries"
            )
        self.user = _system_user()
        self.root = Path(tempfile.mkdtemp(prefix="liaison-bench-pg-"))
        if self.user:
            shutil.chown(self.root, self.user)
        self.port = free_port()
        _run(
            [
                initdb,
                "-D",
                str(self.root / "data"),
                "-U",
                "liaison",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            self.user,
        )

    @property
    def url(self) -> str:
        """The URL of its ``postgres`` database."""
        return f"postgresql+asyncpg://liaison@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = f"-c listen_addresses=127.0.0.1 -c port={self.port}"
        options += f" -c unix_socket_directories={self.root}"
        if not self.fsync:
            options += " -c fsync=off"
        _run(
            [
                self._pg_ctl,
                "-D",
                str(self.root / "data"),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "-l",
                str(self.root / "log"),
                "start",
            ],
            self.user,
        )

    def stop(self) -> None:
        """Stop it as a crash would (``-m immediate``): connections are cut, nothing flushed."""
        _run(
            [self._pg_ctl, "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop"],
            self.user,
        )

    def remove(self) -> None:
        """Delete its files (stop it first)."""
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def _pg_ctl(self) -> str:
        return shutil.which("pg_ctl") or "pg_ctl"


@contextmanager
def postgres_cluster(*, fsync: bool = True) -> Iterator[str]:
    """Start a cluster on a free loopback port; yield the URL of its ``postgres`` database."""
    cluster = PostgresCluster(fsync=fsync)
    cluster.start()
    try:
        yield cluster.url
    finally:
        try:
            cluster.stop()
        finally:
            cluster.remove()


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
