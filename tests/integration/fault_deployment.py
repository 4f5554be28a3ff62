"""A split deployment for fault injection: its own server, one process per service.

``liaison serve api`` (the HTTP API), ``serve ledger`` and ``serve
notifier`` run as separate processes on a server of the test's own (so that
it can be SIGKILLed and restarted from its AOF on the same port); every
process answers ``/readyz``, which a :class:`ReadinessLog` polls throughout.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from services.core.auth import token_digest
from services.core.redis_server import EmbeddedRedis, free_port
from tests.integration.processes import ServiceProcess, ServiceProcesses, wait_for

SERVICES = ("api", "ledger", "notifier")
"""The HTTP API and the consumers the load needs (it publishes over HTTP: no Redis ingress)."""
TOKEN = "fault-publisher-token"
UNITS = ("BLO-OYBEK", "IMT-GULISTAN")
"""The units the load publishes for (its principal may publish for these)."""


@dataclass
class Deployment:
    """The server, the three services' processes and where each answers HTTP."""

    root: Path
    durability: str = "standard"
    database_url: str | None = None
    server: EmbeddedRedis = field(init=False)
    processes: ServiceProcesses = field(init=False)
    ports: dict[str, int] = field(init=False)
    current: dict[str, ServiceProcess] = field(default_factory=dict)

    def __post_init__(self) -> None:
        appendfsync = "always" if self.durability == "strict" else "everysec"
        self.server = EmbeddedRedis(self.root / "redis", appendfsync=appendfsync)
        self.ports = {service: free_port() for service in SERVICES}
        config = self.root / "liaison.yaml"
        config.write_text(
            "principals:\n"
            f"  - {{name: load, role: publisher, token_sha256: {token_digest(TOKEN)}, "
            f"units: [{', '.join(UNITS)}]}}\n",
            encoding="utf-8",
        )
        env = {
            "LIAISON_REDIS_URL": self.server.start(),
            "LIAISON_DATA_DIR": str(self.root / "var"),
            "LIAISON_CONFIG": str(config),
            "LIAISON_CLAIM_IDLE": "1s",
            "LIAISON_DURABILITY": self.durability,
        }
        if self.database_url:
            env["LIAISON_DATABASE_URL"] = self.database_url
        self.processes = ServiceProcesses(self.root / "logs", env)

    def url(self, service: str) -> str:
        """Where ``service`` answers HTTP (the API for api, health for the others)."""
        return f"http://127.0.0.1:{self.ports[service]}"

    def start(self, service: str) -> ServiceProcess:
        """Start (or start again) one service's process."""
        addr = f"127.0.0.1:{self.ports[service]}"
        variable = "LIAISON_HTTP_ADDR" if service == "api" else "LIAISON_HEALTH_ADDR"
        self.current[service] = self.processes.start(service, {variable: addr})
        return self.current[service]

    async def start_all(self) -> None:
        """Ledger first (it creates the schema the API reads), then the others; until every one
        is ready."""
        self.start("ledger")
        await self.wait_ready("ledger", timeout=60)
        for service in ("notifier", "api"):
            self.start(service)
        for service in SERVICES:
            await self.wait_ready(service, timeout=60)

    async def wait_ready(self, service: str, timeout: float = 30) -> None:
        """Until ``service`` answers ``/readyz`` with 200."""

        async def ready() -> bool:
            return await probe(self.url(service)) == "ready"

        await wait_for(ready, f"{service} ready", self.processes, timeout)

    def kill(self, service: str) -> None:
        """SIGKILL one service's process (no clean-up runs)."""
        self.current[service].kill()

    def close(self) -> None:
        """Kill every process and the server."""
        self.processes.close()
        self.server.stop()


async def probe(base_url: str) -> str:
    """``ready``, ``not ready`` (a 503 from /readyz), ``down`` (nothing listens, or the
    connection dropped) or ``slow`` (no answer within the probe's 2 s: on a loaded machine a
    busy process may be late; that says nothing about its readiness)."""
    try:
        async with httpx.AsyncClient(timeout=2.0) as client:
            response = await client.get(f"{base_url}/readyz")
    except httpx.TimeoutException:
        return "slow"
    except httpx.HTTPError:
        return "down"
    return "ready" if response.status_code == 200 else "not ready"


@dataclass
class ReadinessLog:
    """Every service's readiness, polled every ``interval`` seconds: ``(when, state)``."""

    deployment: Deployment
    interval: float = 0.1
    states: dict[str, list[tuple[float, str]]] = field(default_factory=dict)

    async def run(self) -> None:
        """Poll until cancelled."""
        while True:
            for service in SERVICES:
                state = await probe(self.deployment.url(service))
                self.states.setdefault(service, []).append((time.monotonic(), state))
            await asyncio.sleep(self.interval)

    def seen(self, service: str, since: float, until: float | None = None) -> set[str]:
        """The states ``service`` was seen in between two moments."""
        end = until if until is not None else float("inf")
        return {s for t, s in self.states.get(service, []) if since <= t <= end}

    def last(self, service: str) -> str:
        """The latest verdict seen (a probe left unanswered in time is none)."""
        return [s for _, s in self.states[service] if s != "slow"][-1]

    @contextlib.contextmanager
    def polling(self) -> Iterator[None]:
        """Poll in the background while the block runs."""
        task = asyncio.get_running_loop().create_task(self.run())
        try:
            yield
        finally:
            task.cancel()
