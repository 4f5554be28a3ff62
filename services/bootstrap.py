"""The composition root: one process's shared clients, and the services it runs.

``Runtime`` starts (in order) the Redis-compatible server if none is configured, the consumer
groups, the shared clients (:class:`~services.core.wiring.Wiring`), each service's part (its
``app.py``: the ledger's database, ingest's screener, the notifier's inboxes), the broker with
the chosen services' subscribers, then the loops each chosen service owns; and hands the HTTP
API its collaborators (:meth:`Runtime.deps`). Each runtime has its own metrics registry
(:class:`~services.core.prometheus.PrometheusMetrics`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Coroutine
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from redis.asyncio import Redis

from schemas.topology import Topology
from services.core import log_hygiene, streams
from services.core.access import AccessLog, PersonIndex
from services.core.alert_register import OwnerCheck
from services.core.auth import Authenticator
from services.core.bus import Publisher, RedisPublisher, ensure_groups
from services.core.config import (
    ConsoleOptions,
    FileConfig,
    Role,
    read_file_config,
    resolve_topology,
)
from services.core.loops import forever, log_failure
from services.core.operations import OperationRegister
from services.core.private import data_directory
from services.core.prometheus import PrometheusMetrics
from services.core.redis_client import RedisTarget, blocking_timeout, configured_target, connect
from services.core.redis_server import EmbeddedRedis
from services.core.settings import DEFAULT_LEDGER_ORIGIN, Settings
from services.core.streaming import Background, redis_broker
from services.core.wiring import Service, Wiring
from services.ingest.app import IngestService
from services.ingest.backpressure import BackPressure
from services.ingest.quotas import Quotas
from services.ingest.screening import Screener
from services.ledger.app import LedgerService
from services.ledger.open import open_ledger
from services.ledger.store import SqlLedger
from services.notifier.app import NotifierService
from services.notifier.handlers import NotifierDeps
from services.notifier.inbox import RedisInbox
from services.notifier.live import READ_BLOCK, LiveFeeds
from services.trimmer import trim_acknowledged

log = logging.getLogger(__name__)

SERVICES = ("ingest", "ledger", "notifier")
TRIM_PAUSE = 1.0
READY_TIMEOUT = 1.0
"""Seconds the readiness checks wait for the server: a hung (SIGSTOPped, cut-off) primary
answers nothing, and readiness must say so before the prober gives up on us."""
REPLICA_LAG = 2
"""Seconds since a replica's last acknowledgement beyond which ``replicated`` readiness no
longer counts it (replicas acknowledge every second)."""


@dataclass(frozen=True, slots=True)
class Deps:
    """The HTTP API's collaborators: each router reads the part it declares (its ``*Api``
    protocol), the web console the parts of the ledger and the notifier it shows."""

    topology: Topology
    authenticator: Authenticator
    publisher: Publisher
    owners: OwnerCheck
    """Which alerts other units raised: ingest refuses another unit's change."""
    inbox: RedisInbox
    redis: Redis
    notifier: NotifierDeps
    ledger: SqlLedger
    ready: Callable[[], Awaitable[dict[str, bool]]]
    metrics: PrometheusMetrics
    screener: Screener
    live: LiveFeeds
    quotas: Quotas
    """Each publisher's rate limit (ingest's)."""
    backpressure: BackPressure
    """Whether ingest takes new events now (ingest's)."""
    console: ConsoleOptions = field(default_factory=ConsoleOptions)
    metrics_token_sha256: str | None = None
    """Who may read /metrics and the readiness checks on the API's address (None: nobody)."""
    ledger_origin: str = DEFAULT_LEDGER_ORIGIN
    """The ledger's name in what witnesses cosign (``LIAISON_LEDGER_ORIGIN``)."""
    operations: OperationRegister | None = None
    """The register of operations: ingest refuses an alert of an unknown or closed one."""
    access: AccessLog | None = None
    """Records every read of personal data before it is answered (None: reads are refused)."""


class Runtime:
    """Everything one ``liaison`` process runs, started and stopped in order."""

    ledger: SqlLedger
    """Opened where the process runs the ledger or serves the API (which reads it)."""

    def __init__(
        self,
        settings: Settings,
        config: FileConfig | None = None,
        services: Collection[str] = SERVICES,
        *,
        webhooks_apart: bool = False,
    ) -> None:
        log_hygiene.install()  # callers' text in any record is logged escaped
        self.settings = settings
        self.config = config if config is not None else read_file_config(settings.config)
        self.topology = resolve_topology(self.config)
        self.services = tuple(services)
        self.webhooks_apart = webhooks_apart
        """The notifier's webhook worker runs in a child process (``liaison up``: a core of its own)."""
        self.publishers = tuple(p.name for p in self.config.principals if p.role is Role.PUBLISHER)
        self.ingress_streams = tuple(streams.ingress_stream(name) for name in self.publishers)
        self.embedded: EmbeddedRedis | None = None
        self.metrics = PrometheusMetrics()
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> Runtime:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    async def _start(self) -> None:
        data_directory(self.settings, create=True)  # personal data: no other account may enter
        s = self.settings
        target = configured_target(s.redis_url, s.sentinel_nodes, s.redis_sentinel_master)
        if target is None:
            self.embedded = EmbeddedRedis(s.data_dir / "redis", appendfsync=s.appendfsync)
            target = RedisTarget(self.embedded.start())
            self._stack.callback(self.embedded.stop)
            log.info("embedded server at %s", target)
        self.redis_url, self.redis_target = str(target), target
        self._clients(target)
        await ensure_groups(self.redis, self.publishers)  # before anything publishes or reads
        wiring = self._wiring()
        self.publisher = wiring.publisher
        # Every process builds ingest and the notifier (the HTTP API serves each one's
        # endpoints), and opens and migrates the ledger only where it runs it: ingest and the
        # notifier never read or write it (no database access), and the API only reads it
        # (:meth:`deps` opens it then, unmigrated: its database user may be read-only, and
        # several API processes never race to migrate). Only the chosen ones subscribe and
        # start their loops.
        ledger = None
        if "ledger" in self.services:
            ledger = await LedgerService.open(wiring, runs="ledger" in self.services)
            self.ledger = ledger.ledger
        ingest = IngestService(wiring)
        notifier = NotifierService(wiring, webhooks_apart=self.webhooks_apart)
        self.screener = ingest.screener
        self.inbox, self.notifier = notifier.inbox, notifier.deps
        self.api_inbox, self.live = notifier.api_inbox, notifier.live
        self._api = (ingest, notifier)
        parts: dict[str, Service] = {"ingest": ingest, "notifier": notifier}
        if ledger is not None:
            parts["ledger"] = ledger
        self._running = [parts[name] for name in self.services]
        self.broker = redis_broker(target)
        loops: list[Background] = []  # claimers, group commits
        for service in self._running:
            loops += service.subscribe(self.broker)
        await self.broker.start()
        self._stack.push_async_callback(self.broker.stop)
        for loop in loops:
            self._background(loop.run(), loop.name)
        for service in self._running:
            await service.start()
        self._background(self._trim(), "trimming")
        ingress = self.ingress_streams if "ingest" in self.services else ()
        self.metrics.watch(self.api_redis, self.readiness, ingress)  # every check's subject exists

    def _clients(self, url: RedisTarget) -> None:
        """One client per kind of work, each with its own bounded pool, so that no kind can
        take the connections another needs (~100 live streams once starved publishing,
        escalation and trimming of a shared pool).

        ``redis``: the services' handlers and background loops (claimers, group commits,
        trimming, escalation, webhooks). ``api_redis``: HTTP requests (publish, inboxes,
        acknowledgements, catching up a live stream, readiness and metrics). ``live_redis``:
        the live streams' readers, one blocking ``XREAD`` per unit with open streams, so one
        connection per unit an officer may stream, and a read timeout above that block.
        """
        self.redis = connect(url)
        self.api_redis = connect(url)
        units = {p.unit for p in self.config.principals if p.role is Role.OFFICER}
        self.live_redis = connect(
            url, socket_timeout=blocking_timeout(READ_BLOCK), max_connections=max(1, len(units))
        )
        for client in (self.redis, self.api_redis, self.live_redis):
            self._stack.push_async_callback(client.aclose)

    def _wiring(self) -> Wiring:
        """What every service is built from."""
        options = self.settings.publisher_options
        return Wiring(
            settings=self.settings,
            redis_url=self.redis_url,
            redis_target=self.redis_target,
            config=self.config,
            topology=self.topology,
            redis=self.redis,
            api_redis=self.api_redis,
            live_redis=self.live_redis,
            publisher=RedisPublisher(self.redis, **options),
            api_publisher=RedisPublisher(self.api_redis, **options),
            metrics=self.metrics,
            stack=self._stack,
            start_task=self._background,
        )

    def _background(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)

        async def cancel() -> None:
            # Cancel again while it runs: a client library may swallow one cancellation.
            for _ in range(8):
                task.cancel()
                await asyncio.wait({task}, timeout=0.25)
                if task.done():
                    break
            else:
                log.error("background task %s did not stop: %s", name, task.get_stack(limit=5))
            if task.done() and not task.cancelled() and task.exception() is not None:
                log.error("background task %s failed", name, exc_info=task.exception())

        self._stack.push_async_callback(cancel)

    async def _trim(self) -> None:
        """Trim the streams this process's services consume below what every group acknowledged
        (each stream by one service that consumes it: the rule looks at every group on it)."""
        owned = [stream for service in self._running for stream in service.trimmed]
        retention = int(self.settings.stream_retention.total_seconds() * 1000)

        async def trim() -> None:
            await trim_acknowledged(self.redis, owned, retention)

        await forever(trim, TRIM_PAUSE, "trimming the streams")

    async def readiness(self) -> dict[str, bool]:
        """Each check that must hold for the process to take traffic."""
        checks = {"redis": False} | ({"replicas": False} if self.settings.replicas else {})
        checks |= {"subscribers": all(s.running for s in self.broker.subscribers)}
        for service in self._running:
            checks |= await service.checks()
        try:
            async with asyncio.timeout(READY_TIMEOUT):  # a hung server is not a ready one
                checks["redis"] = bool(await self.api_redis.ping())
                if self.redis_target.sentinels or self.settings.replicas:
                    info = await self.api_redis.info("replication")
                    checks["redis"] = await self._on_the_primary(info)
                    if self.settings.replicas:
                        checks["replicas"] = self._replicas_in_sync(info)
        except (OSError, TimeoutError):
            pass
        except Exception:
            log_failure(log, "readiness: redis ping failed")
        return checks

    async def _on_the_primary(self, info: dict[str, Any]) -> bool:
        """Whether the server this process reads from is the primary. A pool that only reads
        (readiness, inbox reads) never hears ``READONLY`` after a failover, so it would go on
        reading the demoted server: drop its idle connections, the next ask the Sentinels."""
        if info.get("role") == "master":
            return True
        await self.api_redis.connection_pool.disconnect(inuse_connections=False)
        return False

    def _replicas_in_sync(self, info: dict[str, Any]) -> bool:
        """``replicated``: every configured replica is attached and acknowledged recently, so
        publishes can be acknowledged (else they answer 503)."""
        lags = [
            value.get("lag", REPLICA_LAG + 1)
            for key, value in info.items()
            if key.startswith("slave")
            and isinstance(value, dict)
            and value.get("state") == "online"
        ]
        return sum(1 for lag in lags if lag <= REPLICA_LAG) >= self.settings.replicas

    def _ledger_for_the_api(self) -> SqlLedger:
        """The ledger the API reads: a process that neither runs it nor ingest opens it only
        when asked to serve the API (its own service migrates it)."""
        if not hasattr(self, "ledger"):
            self.ledger = open_ledger(self.settings, create_key=False)
            self._stack.push_async_callback(self.ledger.close)
        return self.ledger

    def deps(self) -> Deps:
        """The HTTP API's collaborators."""
        ingest, notifier = self._api
        return Deps(
            topology=self.topology,
            authenticator=Authenticator(self.config.principals),
            publisher=notifier.api_deps.publisher,
            owners=ingest.owners,
            inbox=self.api_inbox,
            redis=self.api_redis,
            notifier=notifier.api_deps,
            ledger=self._ledger_for_the_api(),
            ready=self.readiness,
            metrics=self.metrics,
            screener=self.screener,
            live=self.live,
            console=self.settings.console,
            metrics_token_sha256=self.settings.metrics_token_sha256,
            ledger_origin=self.settings.ledger_origin,
            quotas=ingest.quotas,
            backpressure=ingest.backpressure,
            operations=OperationRegister(self.api_redis),
            access=AccessLog(
                self.api_redis,
                PersonIndex.at(self.settings.access_index_key_path, create=True),
                required=self.settings.access_purpose == "required",
                durable=self.settings.strict,
            ),
        )
