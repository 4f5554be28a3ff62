"""Issue 12.13: another account on the host can neither read the data nor reach the server.

`liaison up` and `liaison demo` keep names and document numbers (the ledger,
the server's append-only files) and the way into the server (its socket or
URL) in the data directory: 0700, every file in it 0600, the ledger file too
when `LIAISON_DATABASE_URL` names one elsewhere; the embedded server listens
on a Unix socket there, on no TCP port.
"""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from services.core.redis_server import free_port
from tests.e2e.test_cli import LIAISON, run
from tests.unprivileged import other_account, probe, public_directory


@pytest.fixture
def shared() -> Iterator[Path]:
    with public_directory() as path:
        yield path


def _modes(root: Path) -> dict[str, str]:
    """Every path under ``root`` (itself included) → its permission bits, as octal text."""
    found = {str(root): oct(stat.S_IMODE(root.stat().st_mode))}
    for path in root.rglob("*"):
        found[str(path)] = oct(stat.S_IMODE(path.lstat().st_mode))
    return found


def _private(modes: dict[str, str]) -> dict[str, str]:
    """The paths whose mode lets anyone but the owner in."""
    return {path: mode for path, mode in modes.items() if int(mode, 8) & 0o077}


def test_up_keeps_its_data_and_its_server_to_itself(shared: Path) -> None:
    data, elsewhere = shared / "var", shared / "db"
    elsewhere.mkdir(mode=0o755)
    ledger = elsewhere / "ledger.sqlite3"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIAISON_")}
    env |= {"LIAISON_DATA_DIR": str(data), "LIAISON_HTTP_ADDR": f"127.0.0.1:{port}",
            "LIAISON_DATABASE_URL": f"sqlite+aiosqlite:///{ledger}"}  # fmt: skip
    command = [LIAISON, "up"]
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            assert "ready at" in proc.stdout.readline()
            assert httpx.get(f"http://127.0.0.1:{port}/readyz").json()["ready"] is True
            url = (data / "redis" / "url").read_text()
            server = redis.Redis.from_url(url)
            assert server.config_get("port") == {"port": "0"}  # no TCP listener at all
            server.close()
            files = _modes(data) | {
                str(p): oct(stat.S_IMODE(p.stat().st_mode))
                for p in elsewhere.iterdir()  # ledger.sqlite3, -wal, -shm
            }
            assert {Path(p).name for p in files} >= {
                "var", "url", "appendonlydir", "server.log", "ledger.sqlite3",
                "ledger.sqlite3-wal", "ledger.sqlite3-shm", "ledger-signing-key.pem",
            }  # fmt: skip
            assert _private(files) == {}
            assert oct(stat.S_IMODE(data.stat().st_mode)) == "0o700"
            account = other_account()
            seen = probe(account, url, [data, *map(Path, files)])
            assert set(seen.read.values()) == {"PermissionError"}, seen.read
            assert seen.connect == "PermissionError", seen.connect
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def test_demo_data_is_private_too(shared: Path) -> None:
    data = shared / "demo"
    assert run("demo", "--data-dir", str(data)).returncode == 0
    files = _modes(data)
    assert any(p.endswith("ledger.sqlite3") for p in files)
    assert any("appendonly" in p for p in files)
    assert _private(files) == {}
    seen = probe(other_account(), "unix:///nonexistent", [Path(p) for p in files])
    assert set(seen.read.values()) == {"PermissionError"}, seen.read


def test_an_existing_open_data_directory_is_closed_on_start(shared: Path) -> None:
    """Data directories made by earlier versions (0755, files 0644) are tightened."""
    data = shared / "old"
    assert run("demo", "--data-dir", str(data)).returncode == 0
    for path in [data, *data.rglob("*")]:
        if not path.is_socket():
            path.chmod(0o755 if path.is_dir() else 0o644)
    result = run("ledger", "verify", env={"LIAISON_DATA_DIR": str(data)})
    assert result.returncode == 0, result.stderr
    assert run("inbox", "IMT-TASHKENT", env={"LIAISON_DATA_DIR": str(data)}).returncode == 0
    assert _private(_modes(data)) == {}
