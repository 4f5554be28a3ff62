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
from services.core.redis_client import blocking_timeout, connect
from services.core.redis_server import EmbeddedRedis
from services.core.settings import Settings
from services.core.streaming import Background, redis_broker
from services.core.wiring import Service, Wiring
from services.ingest.app import IngestService
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
    console: ConsoleOptions = field(default_factory=ConsoleOptions)
    metrics_token_sha256: str | None = None
    """Who may read /metrics and the readiness checks on the API's address (None: nobody)."""
    operations: OperationRegister | None = None
    """The register of operations: ingest refuses an alert of an unknown or closed one."""
    access: AccessLog | None = None
    """Records every read of personal data before it is answered (None: reads are refused)."""


class Runtime:
    """Everything one ``liaison`` process runs, started and stopped in order."""

    ledger: SqlLedger
    """Opened where the process runs the ledger or ingest (whose API reads it)."""

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
        url = self.settings.redis_url
        if url is None:
            self.embedded = EmbeddedRedis(
                self.settings.data_dir / "redis", appendfsync=self.settings.appendfsync
            )
            url = self.embedded.start()
            self._stack.callback(self.embedded.stop)
            log.info("embedded server at %s", url)
        self.redis_url = url
        self._clients(url)
        await ensure_groups(self.redis, self.publishers)  # before anything publishes or reads
        wiring = self._wiring()
        self.publisher = wiring.publisher
        # Every process builds ingest and the notifier (the HTTP API serves each one's
        # endpoints), and the ledger where it runs it or serves its endpoints (ingest's API): a
        # notifier never reads or writes it, so it neither opens nor migrates it — no database
        # access, and no start-up race of several processes migrating one SQLite file. Only the
        # chosen ones subscribe and start their loops.
        ledger = None
        if {"ledger", "ingest"} & set(self.services):
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
        self.broker = redis_broker(url)
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

    def _clients(self, url: str) -> None:
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
        checks = {"redis": False, "subscribers": all(s.running for s in self.broker.subscribers)}
        for service in self._running:
            checks |= await service.checks()
        try:
            checks["redis"] = bool(await self.api_redis.ping())
        except OSError:
            pass
        except Exception:
            log_failure(log, "readiness: redis ping failed")
        return checks

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
            operations=OperationRegister(self.api_redis),
            access=AccessLog(
                self.api_redis,
                PersonIndex.at(self.settings.access_index_key_path, create=True),
                required=self.settings.access_purpose == "required",
                durable=self.settings.strict,
            ),
        )
