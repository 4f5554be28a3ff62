"""``liaison up``'s processes: the webhook worker in one of its own, gone with its parent.

The README promises that ``liaison up`` runs the webhook worker in a second process
(when the machine has a second core, so that delivery has one to itself) and that
nothing keeps running after it ends — however it ends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from services.core.redis_server import free_port

LIAISON = str(Path(sys.executable).parent / "liaison")
WORKER = "services.notifier.webhook_process"


def _descendants(pid: int) -> dict[int, str]:
    """Every live descendant of ``pid``: its command line, by pid (read from /proc)."""
    parents: dict[int, int] = {}
    commands: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:  # it ended while we looked
            continue
        # The command name in parentheses may hold spaces: the fields after it are fixed.
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z":
            parents[int(entry.name)] = int(fields[1])
            commands[int(entry.name)] = command
    found: dict[int, str] = {}
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, its_parent in parents.items():
            if its_parent == parent and child not in found:
                found[child] = commands[child]
                frontier.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    """The pids still alive after up to ``timeout`` seconds (polled, not slept through)."""
    deadline = time.monotonic() + timeout
    while (left := [p for p in pids if _alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _start_up(tmp_path: Path) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIAISON_")}
    env |= {"LIAISON_DATA_DIR": str(tmp_path), "LIAISON_HTTP_ADDR": f"127.0.0.1:{port}"}
    proc = subprocess.Popen(
        [LIAISON, "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert proc.stdout is not None
    assert "ready at" in proc.stdout.readline()
    return proc, port


def _workers(pid: int) -> list[int]:
    return [p for p, command in _descendants(pid).items() if WORKER in command]


def test_up_runs_the_webhook_worker_apart_and_stops_it_on_sigterm(tmp_path: Path) -> None:
    proc, port = _start_up(tmp_path)
    with proc:
        workers = _workers(proc.pid)
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz").json()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    # A second core: the worker has a process of its own; one core: it shares the loop.
    assert len(workers) == (1 if (os.cpu_count() or 1) > 1 else 0)
    assert ready["ready"] is True
    assert _wait_gone(workers, timeout=15) == []


def test_a_sigkilled_up_leaves_no_process_behind(tmp_path: Path) -> None:
    proc, _ = _start_up(tmp_path)
    with proc:
        descendants = list(_descendants(proc.pid))
        assert descendants  # the embedded server at least
        proc.kill()
        proc.wait(timeout=30)
    # The worker ends when its standard input closes, the server when its parent dies.
    assert _wait_gone(descendants, timeout=30) == []
