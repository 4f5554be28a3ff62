"""A throwaway PostgreSQL cluster for the test session (``initdb``/``pg_ctl`` from PATH).

Runs as the ``postgres`` system user when the tests run as root (PostgreSQL
refuses to run as root). ``LIAISON_TEST_DATABASE_URL`` points the suite at an
existing server instead.
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


@contextmanager
def postgres_cluster() -> Iterator[str]:
    """Start a cluster on a free loopback port; yield its SQLAlchemy asyncpg URL."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if not initdb or not pg_ctl:
        raise PostgresUnavailable("initdb/pg_ctl not on PATH: install PostgreSQL server binaries")
    user = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresUnavailable("running as root and there is no 'postgres' user") from None
        user = "postgres"
    root = Path(tempfile.mkdtemp(prefix="liaison-pg-"))
    data = root / "data"
    if user:
        shutil.chown(root, user)
    port = _free_port()
    _run(
        [initdb, "-D", str(data), "-U", "liaison", "--auth=trust", "-E", "UTF8", "--no-sync"], user
    )
    options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root} -c fsync=off"
    _run(
        [
            pg_ctl,
            "-D",
            str(data),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "-l",
            str(root / "log"),
            "start",
        ],
        user,
    )
    try:
        yield f"postgresql+asyncpg://liaison@127.0.0.1:{port}/postgres"
    finally:
        _run([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"], user)
        shutil.rmtree(root, ignore_errors=True)
