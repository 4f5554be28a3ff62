"""The embedded server: real, persistent, on a private Unix socket only, and never orphaned."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import redis

from services.core.redis_server import EmbeddedRedis


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); it is gone for our purposes
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def _wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_starts_with_aof_on_a_private_socket_and_stops(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    pid = server.pid
    assert pid is not None
    client = redis.Redis.from_url(server.url)
    try:
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("port") == {"port": "0"}  # no TCP listener
        assert client.config_get("unixsocket") == {"unixsocket": str(server.socket_path)}
        assert client.config_get("dir")["dir"] == str((tmp_path / "redis").resolve())
        assert (tmp_path / "redis" / "url").read_text() == server.url
    finally:
        client.close()
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "redis").rglob("*")}
    assert stat.S_IMODE((tmp_path / "redis").stat().st_mode) == 0o700
    assert modes["redis.sock"] == modes["url"] == modes["server.log"] == 0o600
    assert {mode for name, mode in modes.items() if name != "appendonlydir"} == {0o600}
    server.stop()
    assert _wait_gone(pid)
    assert not (tmp_path / "redis" / "url").exists()


def test_data_survives_a_restart(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as server:
        client = redis.Redis.from_url(server.url)
        client.xadd("s", {"k": "v"})
        client.close()
    with EmbeddedRedis(tmp_path) as server:
        client = redis.Redis.from_url(server.url)
        assert client.xlen("s") == 1
        client.close()


def test_server_dies_with_a_sigkilled_parent(tmp_path: Path) -> None:
    script = (
        "import sys, time; from pathlib import Path; from services.core.redis_server import EmbeddedRedis\n"
        f"s = EmbeddedRedis(Path({str(tmp_path)!r})); s.start()\n"
        "print(s.pid, flush=True); time.sleep(60)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    ) as parent:
        assert parent.stdout is not None
        server_pid = int(parent.stdout.readline())
        assert _alive(server_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    assert _wait_gone(server_pid), "the embedded server outlived its parent"
