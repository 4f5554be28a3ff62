"""``liaison serve SERVICE`` as real, separate processes, for crash tests.

Every process writes its stdout and stderr to its own log file (no pipes to
drain, nothing to leak); :meth:`ServiceProcesses.close` SIGKILLs and reaps
whatever is still running, so a failing test leaves no orphan behind.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

LIAISON = Path(sys.executable).parent / "liaison"


@dataclass
class ServiceProcess:
    """One ``liaison serve`` process and its log."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        """The process id (also part of its consumer names)."""
        return self.proc.pid

    def running(self) -> bool:
        """Whether it has not exited yet."""
        return self.proc.poll() is None

    def pause(self) -> None:
        """SIGSTOP: freeze it exactly where it is, so its state can be looked at."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT: let a paused process go on."""
        self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> int:
        """SIGKILL it (no clean-up of any kind runs; paused or not) and reap it; its exit code."""
        if self.running():
            self.proc.send_signal(signal.SIGKILL)
        return self.proc.wait(timeout=10)

    async def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM it and wait for a clean exit; SIGKILL and raise if it does not come."""
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.to_thread(self.proc.wait, timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"{self.name} ignored SIGTERM for {timeout}s:\n{self.output()}"
            ) from None

    def output(self) -> str:
        """Everything it printed so far."""
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""


@dataclass
class ServiceProcesses:
    """Starts ``liaison serve`` processes with a clean ``LIAISON_*`` environment plus ``env``."""

    log_dir: Path
    env: Mapping[str, str]
    started: list[ServiceProcess] = field(default_factory=list)

    def start(
        self,
        service: str = "ledger",
        env: Mapping[str, str] | None = None,
        launcher: Sequence[str] = (),
    ) -> ServiceProcess:
        """Start ``liaison serve SERVICE`` (``env`` on top of the shared one); returns at once.
        ``launcher``: a command prefix (``ip netns exec HOST``: run it on a simulated host)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        name = f"{service}-{len(self.started) + 1}"
        log = self.log_dir / f"{name}.log"
        base = {k: v for k, v in os.environ.items() if not k.startswith("LIAISON_")}
        with log.open("wb") as out:  # the child keeps its own copy of the descriptor
            proc = subprocess.Popen(
                [*launcher, str(LIAISON), "serve", service],
                env={**base, "PYTHONUNBUFFERED": "1", **self.env, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.started.append(ServiceProcess(name, proc, log))
        return self.started[-1]

    def close(self) -> None:
        """SIGKILL and reap every process still running."""
        for process in self.started:
            process.kill()

    def logs(self) -> str:
        """Every process's output, for a failure message."""
        return "\n".join(f"--- {p.name} (pid {p.pid})\n{p.output()}" for p in self.started)


async def wait_for(
    check: Callable[[], bool | Awaitable[bool]],
    what: str,
    processes: ServiceProcesses,
    timeout: float = 30,
) -> None:
    """Poll ``check`` until it holds; fail with the processes' output at the deadline."""

    async def holds() -> bool:
        result = check()
        return await result if inspect.isawaitable(result) else result

    try:
        async with asyncio.timeout(timeout):
            while not await holds():
                await asyncio.sleep(0.01)
    except TimeoutError:
        pytest.fail(f"not within {timeout}s: {what}\n{processes.logs()}")
