"""A real replicated deployment on loopback: a Valkey primary, its replicas and three Sentinels.

Every node is the binary the embedded server uses (``find_server_binary``), the Sentinels the
same binary in ``--sentinel`` mode. Timeouts are small (a primary is judged down after
:data:`DOWN_AFTER_MS`) so that a failover takes a few seconds, not half a minute.
``launcher`` wraps each command (the failover suite runs each node in its own network
namespace); ``hosts`` are the addresses the nodes listen on, one per node.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis

from services.core.redis_client import RedisTarget
from services.core.redis_server import find_server_binary, free_port

MASTER = "liaison"
DOWN_AFTER_MS = 1000
"""A node silent this long is down for a Sentinel (production: several seconds)."""
FAILOVER_TIMEOUT_MS = 6000


@dataclass
class Node:
    """One server or Sentinel process."""

    name: str
    host: str
    port: int
    directory: Path
    command: list[str]
    process: subprocess.Popen[bytes] | None = None

    def start(self, launcher: Callable[[str], list[str]]) -> None:
        """Start it (again, on its port and data) and wait until it answers."""
        self.directory.mkdir(parents=True, exist_ok=True)
        log = (self.directory / "out.log").open("ab")
        self.process = subprocess.Popen(
            [*launcher(self.name), *self.command],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.ConnectionError, redis.BusyLoadingError):
                if self.client(timeout=0.5).ping():
                    return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start; see {self.directory / 'out.log'}")

    def client(self, timeout: float = 2.0) -> redis.Redis:
        """A plain client of this node (not through the Sentinels)."""
        return redis.Redis(self.host, self.port, socket_timeout=timeout,
                           socket_connect_timeout=timeout)  # fmt: skip

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the process (SIGKILL: reap it)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, sig)
        if sig is signal.SIGKILL:
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        """Stop it for good (SIGCONT first: a stopped process cannot handle SIGKILL's reaping)."""
        if self.process is not None:
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGKILL)


@dataclass
class SentinelCluster:
    """A primary, ``replicas`` replicas and three Sentinels (quorum 2)."""

    directory: Path
    replicas: int = 2
    hosts: Sequence[str] = ()
    launcher: Callable[[str], list[str]] = lambda _name: []
    server_args: Sequence[str] = ()
    """Extra settings of every server (``--min-replicas-to-write 1`` …)."""
    servers: list[Node] = field(default_factory=list)
    sentinels: list[Node] = field(default_factory=list)

    def __post_init__(self) -> None:
        binary = str(find_server_binary())
        hosts = list(self.hosts) or ["127.0.0.1"] * (self.replicas + 4)
        for i in range(self.replicas + 1):
            port, host = free_port(), hosts[i]
            command = [binary, "--port", str(port), "--bind", host, "--protected-mode", "no",
                       "--dir", ".", "--appendonly", "yes", "--appendfsync", "everysec",
                       "--save", "", "--replica-announce-ip", host, *self.server_args]  # fmt: skip
            self.servers.append(Node(f"valkey{i}", host, port, self.directory / f"valkey{i}",
                                     command))  # fmt: skip
        primary = self.servers[0]
        for replica in self.servers[1:]:
            replica.command += ["--replicaof", primary.host, str(primary.port)]
        for i in range(3):
            port, host = free_port(), hosts[self.replicas + 1 + i]
            node = Node(f"sentinel{i}", host, port, self.directory / f"sentinel{i}", [])
            node.directory.mkdir(parents=True, exist_ok=True)
            conf = node.directory / "sentinel.conf"
            conf.write_text(
                f"port {port}\nbind {host}\nprotected-mode no\ndir {node.directory}\n"
                f"sentinel announce-ip {host}\n"
                f"sentinel monitor {MASTER} {primary.host} {primary.port} 2\n"
                f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {MASTER} {FAILOVER_TIMEOUT_MS}\n"
                f"sentinel parallel-syncs {MASTER} 2\n"
            )
            node.command = [binary, str(conf), "--sentinel"]
            self.sentinels.append(node)

    def start(self) -> SentinelCluster:
        """Start every node; return once the replicas are in sync and the Sentinels agree."""
        for node in [*self.servers, *self.sentinels]:
            node.start(self.launcher)
        self.wait(lambda: self.connected_replicas(self.servers[0]) == self.replicas)
        self.wait(lambda: all(self._sees_all(s) for s in self.sentinels))
        return self

    def restart(self, node: Node) -> None:
        """Start a killed node again on its port and data."""
        node.start(self.launcher)

    def stop(self) -> None:
        """Stop every node."""
        for node in [*self.sentinels, *self.servers]:
            node.stop()

    @property
    def target(self) -> RedisTarget:
        """What the services are configured with (``LIAISON_REDIS_SENTINELS``)."""
        return RedisTarget("redis://", tuple((s.host, s.port) for s in self.sentinels), MASTER)

    @property
    def sentinels_setting(self) -> str:
        """``LIAISON_REDIS_SENTINELS`` of this cluster."""
        return ",".join(f"{s.host}:{s.port}" for s in self.sentinels)

    def primary(self) -> Node:
        """The server most Sentinels name primary now (a Sentinel cut off with the old
        primary still names it)."""
        votes: Counter[tuple[str, int]] = Counter()
        for sentinel in self.sentinels:
            with contextlib.suppress(redis.RedisError):
                host, port = sentinel.client(timeout=0.5).sentinel_get_master_addr_by_name(MASTER)
                votes[(host.decode() if isinstance(host, bytes) else host, int(port))] += 1
        if not votes:
            raise RuntimeError("no Sentinel answers")
        named, _ = votes.most_common(1)[0]
        return next(s for s in self.servers if (s.host, s.port) == named)

    def connected_replicas(self, server: Node) -> int:
        """How many replicas are attached to ``server`` and in sync now."""
        with contextlib.suppress(redis.RedisError):
            info = server.client().info("replication")
            return sum(
                1 for key, value in info.items()
                if key.startswith("slave") and isinstance(value, dict)
                and value.get("state") == "online"
            )  # fmt: skip
        return 0

    def _sees_all(self, sentinel: Node) -> bool:
        with contextlib.suppress(redis.RedisError):
            state = sentinel.client().sentinel_master(MASTER)
            return (int(state["num-other-sentinels"]) == len(self.sentinels) - 1
                    and int(state["num-slaves"]) == self.replicas)  # fmt: skip
        return False

    async def failed_over_from(self, old: Node) -> Node:
        """Wait until every Sentinel names a primary other than ``old``, with its replicas in
        sync again, and return it."""

        def settled() -> bool:
            try:
                new = self.primary()
            except RuntimeError:
                return False
            return new is not old and self.connected_replicas(new) >= self.replicas - 1

        await self.await_(settled, timeout=45)
        return self.primary()

    @staticmethod
    def wait(check: Callable[[], bool], timeout: float = 30.0) -> None:
        """Poll ``check`` until it holds (fails with a message at the deadline)."""
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout}s: {check.__qualname__}")
            time.sleep(0.05)

    @staticmethod
    async def await_(check: Callable[[], bool], timeout: float = 30.0) -> None:
        """:meth:`wait` for async tests: the event loop runs between polls."""
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout}s: {check.__qualname__}")
            await asyncio.sleep(0.05)
