"""A replicated deployment on simulated hosts, for the failover suite.

Hosts (network namespaces on one bridge, :mod:`tests.integration.netns`):

* ``v0``, ``v1``, ``v2`` — a Valkey server and a Sentinel each (``v0``'s server starts as the
  primary; quorum 2, a server silent for 1 s is down);
* ``s1``, ``s2`` — ``liaison serve api``, ``serve ledger`` and ``serve notifier`` each,
  configured with the Sentinels and a multi-host PostgreSQL URL only;
* ``pg0``, ``pg1`` — the ledger's PostgreSQL primary and its synchronous standby;
* the test process itself (the root namespace) — the publishers' side, and the observer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from services.core.auth import token_digest
from tests.integration.fault_deployment import TOKEN, UNITS, probe
from tests.integration.netns import Host, Network
from tests.integration.pg_pair import PgPair
from tests.integration.processes import ServiceProcess, ServiceProcesses, wait_for
from tests.integration.sentinel_cluster import SentinelCluster

SERVICE_HOSTS = ("s1", "s2")
SERVICES = ("ledger", "notifier", "api")
API_PORT, LEDGER_PORT, NOTIFIER_PORT = 8700, 8701, 8702
SERVER_SETTINGS = ("--min-replicas-to-write", "1", "--min-replicas-max-lag", "5")
"""What README "Running on several hosts" recommends: an isolated primary stops taking writes
after 5 s."""


@dataclass
class HaDeployment:
    """Everything above, started by :meth:`start`, removed by :meth:`close` whatever happened."""

    root: Path
    durability: str
    network: Network = field(default_factory=Network)
    hosts: dict[str, Host] = field(default_factory=dict)
    valkey: SentinelCluster = field(init=False)
    pg: PgPair = field(init=False)
    processes: ServiceProcesses = field(init=False)
    current: dict[str, ServiceProcess] = field(default_factory=dict)

    def start_network(self) -> None:
        """The bridge and the hosts."""
        self.network.create()
        for name in ("v0", "v1", "v2", "s1", "s2", "pg0", "pg1"):
            self.hosts[name] = self.network.add(name)

    def start_servers(self) -> None:
        """Valkey, the Sentinels, PostgreSQL."""
        v = [self.hosts[f"v{i}"] for i in range(3)]
        by_node = {f"valkey{i}": v[i] for i in range(3)} | {f"sentinel{i}": v[i] for i in range(3)}
        self.valkey = SentinelCluster(
            self.root / "valkey",
            hosts=[h.address for h in v + v],
            launcher=lambda name: by_node[name].launcher(),
            server_args=SERVER_SETTINGS,
        ).start()
        pg0, pg1 = self.hosts["pg0"], self.hosts["pg1"]
        self.pg = PgPair((pg0.address, pg1.address), (pg0.launcher(), pg1.launcher()),
                         self.network.subnet)  # fmt: skip
        self.pg.start().wait_streaming()

    def start_services_env(self) -> None:
        """The settings every service process shares."""
        config = self.root / "liaison.yaml"
        config.write_text(
            "principals:\n"
            f"  - {{name: load, role: publisher, token_sha256: {token_digest(TOKEN)}, "
            f"units: [{', '.join(UNITS)}]}}\n",
            encoding="utf-8",
        )
        env = {
            "LIAISON_REDIS_SENTINELS": self.valkey.sentinels_setting,
            "LIAISON_DATABASE_URL": self.pg.url,
            "LIAISON_CONFIG": str(config),
            "LIAISON_CLAIM_IDLE": "1s",
            "LIAISON_DURABILITY": self.durability,
            "LIAISON_SIGNING_KEY": str(self.root / "key" / "ledger.pem"),
        }
        if self.durability == "replicated":
            env["LIAISON_REDIS_REPLICAS"] = "2"
        (self.root / "key").mkdir(mode=0o700)
        self.processes = ServiceProcesses(self.root / "logs", env)

    async def start(self) -> None:
        """Everything, until every service answers ready."""
        self.start_network()
        await asyncio.to_thread(self.start_servers)
        self.start_services_env()
        for host in SERVICE_HOSTS:  # the first ledger creates the schema and the key
            for service in SERVICES:
                self.start_service(host, service)
                if host == "s1" and service == "ledger":
                    await self.wait_ready("s1/ledger", timeout=90)
        for name in self.urls:
            await self.wait_ready(name, timeout=90)

    def start_service(self, host: str, service: str) -> ServiceProcess:
        """Start (again) one service on one host."""
        h = self.hosts[host]
        port = {"api": API_PORT, "ledger": LEDGER_PORT, "notifier": NOTIFIER_PORT}[service]
        variable = "LIAISON_HTTP_ADDR" if service == "api" else "LIAISON_HEALTH_ADDR"
        env = {variable: f"{h.address}:{port}", "LIAISON_DATA_DIR": str(self.root / host)}
        name = f"{host}/{service}"
        self.current[name] = self.processes.start(service, env, h.launcher())
        return self.current[name]

    @property
    def urls(self) -> dict[str, str]:
        """``host/service`` → where it answers ``/readyz``."""
        ports = {"api": API_PORT, "ledger": LEDGER_PORT, "notifier": NOTIFIER_PORT}
        return {
            f"{host}/{service}": f"http://{self.hosts[host].address}:{ports[service]}"
            for host in SERVICE_HOSTS
            for service in SERVICES
        }

    def api(self, host: str) -> str:
        """The HTTP API of the api on ``host``."""
        return self.urls[f"{host}/api"]

    async def wait_ready(self, name: str, timeout: float = 60) -> None:
        """Until ``name`` (``host/service``) answers ``/readyz`` with 200."""

        async def ready() -> bool:
            return await probe(self.urls[name]) == "ready"

        await wait_for(ready, f"{name} ready", self.processes, timeout)

    def crash_host(self, host: str) -> None:
        """Every process of a service host SIGKILLed at once."""
        self.hosts[host].crash()
        for service in SERVICES:
            self.current[f"{host}/{service}"].kill()  # reaped

    def close(self) -> None:
        """Kill everything, remove the hosts, the bridges and PostgreSQL's files."""
        try:
            if hasattr(self, "processes"):
                self.processes.close()
            if hasattr(self, "valkey"):
                self.valkey.stop()
        finally:
            self.network.remove()
            if hasattr(self, "pg"):
                self.pg.remove()


@dataclass
class Readiness:
    """Every service's ``/readyz`` verdict, polled throughout: ``(when, state)``."""

    urls: dict[str, str]
    states: dict[str, list[tuple[float, str]]] = field(default_factory=dict)

    async def run(self) -> None:
        """Poll until cancelled."""
        async with httpx.AsyncClient(timeout=2.0):
            while True:
                verdicts = await asyncio.gather(*(probe(url) for url in self.urls.values()))
                for name, state in zip(self.urls, verdicts, strict=True):
                    self.states.setdefault(name, []).append((time.monotonic(), state))
                await asyncio.sleep(0.1)

    def seen(self, name: str, since: float, until: float = float("inf")) -> set[str]:
        """The verdicts on ``name`` between two moments."""
        return {s for t, s in self.states.get(name, []) if since <= t <= until}

    @contextmanager
    def polling(self) -> Iterator[None]:
        """Poll in the background while the block runs."""
        task = asyncio.get_running_loop().create_task(self.run())
        try:
            yield
        finally:
            task.cancel()
