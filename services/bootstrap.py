"""The one place that wires Liaison Exchange together, for every entry point.

``Runtime`` starts (in order) the Redis-compatible server if none is
configured, the consumer groups, the ledger's database, the broker with
the chosen services' subscribers, and hands the HTTP API its collaborators.
Each runtime has its own metrics registry (:class:`~services.prometheus.PrometheusMetrics`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Collection, Coroutine
from contextlib import AsyncExitStack
from dataclasses import replace
from types import TracebackType
from typing import Any

from redis.asyncio import Redis

from services import log_hygiene, streams
from services.alert_register import AlertRegister
from services.auth import Authenticator
from services.bus import RedisPublisher, ensure_groups
from services.config import FileConfig, Role, Settings, read_file_config, resolve_topology
from services.ingest.app import INGEST_OPTIONS, register_ingest
from services.ingest.screening import Screener
from services.ledger.app import LEDGER_OPTIONS, register_ledger
from services.ledger.open import open_ledger
from services.ledger.store import SqlLedger
from services.loops import forever, log_failure
from services.metrics import ESCALATIONS
from services.notifier.app import NOTIFIER_OPTIONS, register_notifier
from services.notifier.escalation import escalate_due
from services.notifier.handlers import NotifierDeps
from services.notifier.inbox import RedisInbox
from services.notifier.live import READ_BLOCK, LiveFeeds
from services.notifier.retention import BATCH, expire_inboxes
from services.notifier.webhook_metrics import CountedWebhookOutcomes
from services.notifier.webhook_outcomes import RecordedWebhookOutcomes
from services.notifier.webhook_queue import WebhookQueue
from services.notifier.webhooks import WebhookWorker, WorkerOptions
from services.private import data_directory
from services.prometheus import PrometheusMetrics
from services.redis_client import blocking_timeout, connect
from services.redis_server import EmbeddedRedis
from services.runtime_deps import Deps
from services.streaming import Background, redis_broker
from services.trimmer import trim_acknowledged

log = logging.getLogger(__name__)

SERVICES = ("ingest", "ledger", "notifier")
TRIMMED_BY = {
    "ingest": (),  # and every publisher's ingress stream (Runtime.ingress_streams)
    "ledger": streams.CANONICAL_STREAMS,
    "notifier": (streams.WEBHOOKS,),
}
"""Each stream is trimmed by one service that consumes it (any could: the rule looks at
every group on the stream)."""
TRIM_PAUSE = 1.0


def consumer_name(service: str) -> str:
    """Unique per process, so two processes never share a consumer's pending entries."""
    return f"{service}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Runtime:
    """Everything one ``liaison`` process runs, started and stopped in order."""

    ledger: SqlLedger
    """Opened when the process runs the ledger or ingest (whose API reads it)."""

    def __init__(
        self,
        settings: Settings,
        config: FileConfig | None = None,
        services: Collection[str] = SERVICES,
    ) -> None:
        log_hygiene.install()  # callers' text in any record is logged escaped
        self.settings = settings
        self.config = config if config is not None else read_file_config(settings.config)
        self.topology = resolve_topology(self.config)
        self.services = tuple(services)
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
        # The ledger service writes it, ingest's API reads it; a notifier never touches it, so
        # it neither opens nor migrates it (no database access, no start-up race on SQLite).
        if {"ledger", "ingest"} & set(self.services):
            self.ledger = open_ledger(self.settings, create_key="ledger" in self.services)
            self._stack.push_async_callback(self.ledger.close)
            await self.ledger.create_schema()
        if "ledger" in self.services:  # unwound after the broker stopped: nothing appends any more
            self._stack.push_async_callback(self._final_checkpoint)
        self.publisher = RedisPublisher(self.redis, **self.settings.publisher_options)
        self.screener = Screener(self.topology)
        self._stack.callback(self.screener.close)
        self.inbox = self._inbox(self.redis)
        self.alert_register = AlertRegister(self.redis, dedupe_window=self._dedupe_window)
        self.webhook_queue = WebhookQueue(self.redis, self.config.webhooks)
        self.notifier = NotifierDeps(
            self.topology, self.inbox, self.publisher,
            deadlines=self.config.ack_deadlines, webhooks=self.webhook_queue,
            metrics=self.metrics,
        )  # fmt: skip
        self._api_collaborators()
        self.broker = redis_broker(url)
        loops: list[Background] = []  # claimers, group commits
        claim = {
            "claim_idle_ms": int(self.settings.claim_idle.total_seconds() * 1000),
            "retry_cap": self.settings.retry_cap,
        }
        if "ingest" in self.services:
            options = replace(INGEST_OPTIONS, **claim)
            loops += register_ingest(self.broker, self.redis, self.config.principals, self.screener,
                                     self.publisher, consumer_name("ingest"), options,
                                     self.metrics, self.alert_register)  # fmt: skip
        if "ledger" in self.services:
            options = replace(LEDGER_OPTIONS, **claim)
            loops += register_ledger(self.broker, self.redis, self.ledger,
                                     consumer_name("ledger"), options, self.metrics)  # fmt: skip
        if "notifier" in self.services:
            options = replace(NOTIFIER_OPTIONS, **claim)
            loops += register_notifier(self.broker, self.redis, self.notifier,
                                       consumer_name("notifier"), options, self.metrics)  # fmt: skip
        await self.broker.start()
        self._stack.push_async_callback(self.broker.stop)
        for loop in loops:
            self._background(loop.run(), loop.name)
        if "ledger" in self.services:
            self._background(self._sign_checkpoints(), "checkpoints")
        self._background(self._trim(), "trimming")
        if "notifier" in self.services:
            self._background(self._escalate(), "escalation")
            self._background(self._expire_inboxes(), "inbox retention")
            self.webhook_worker = WebhookWorker(
                self.redis, self.config.webhooks,
                CountedWebhookOutcomes(RecordedWebhookOutcomes(self.redis, self.publisher),
                                       self.metrics),
                consumer_name("webhooks"),
                options=WorkerOptions(claim_idle=self.settings.claim_idle.total_seconds()),
            )  # fmt: skip
            self._background(self.webhook_worker.run(), "webhooks")
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

    def _api_collaborators(self) -> None:
        """What the HTTP API works with: the same services on the API's own clients."""
        publisher = RedisPublisher(self.api_redis, **self.settings.publisher_options)
        self.api_inbox = self._inbox(self.api_redis)
        self.api_notifier = replace(
            self.notifier,
            inbox=self.api_inbox,
            publisher=publisher,
            webhooks=WebhookQueue(self.api_redis, self.config.webhooks),
        )
        self.live = LiveFeeds(
            self.live_redis,
            self.api_redis,
            inbox=self._inbox,
            heartbeat=self.settings.live_heartbeat.total_seconds(),
            per_principal=self.settings.live_streams_per_principal,
        )
        self._stack.push_async_callback(self.live.aclose)

    @property
    def _dedupe_window(self) -> int:
        return int(self.settings.dedupe_window.total_seconds())

    def _inbox(self, client: Redis) -> RedisInbox:
        """The inboxes (and the register of alerts), through ``client``."""
        return RedisInbox(
            client,
            dedupe_window=self._dedupe_window,
            retention=self.settings.inbox_retention.total_seconds(),
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

    async def _escalate(self) -> None:
        """Escalate deliveries past their deadline, checking often enough for the shortest."""
        deadlines = self.config.ack_deadlines
        shortest = min(deadlines.flash, deadlines.urgent, deadlines.routine).total_seconds()

        async def escalate() -> None:
            self.metrics.inc(ESCALATIONS, await escalate_due(self.notifier))

        await forever(escalate, min(max(shortest / 10, 0.05), 1.0), "escalation")

    async def _expire_inboxes(self) -> None:
        """Remove alerts from the inboxes once their retention has passed."""
        pause = min(max(self.settings.inbox_retention.total_seconds() / 10, 0.05), 60.0)

        async def expire() -> None:
            while await expire_inboxes(self.redis, time.time()) == BATCH:
                pass  # a backlog: keep going until a short batch

        await forever(expire, pause, "expiring inboxes")

    async def _trim(self) -> None:
        """Trim the streams this process consumes below what every group acknowledged."""
        owned = [s for service in self.services for s in TRIMMED_BY[service]]
        if "ingest" in self.services:
            owned += self.ingress_streams
        retention = int(self.settings.stream_retention.total_seconds() * 1000)
        await forever(lambda: trim_acknowledged(self.redis, owned, retention), TRIM_PAUSE,
                      "trimming the streams")  # fmt: skip

    async def _final_checkpoint(self) -> None:
        try:
            await self.ledger.checkpoint_if_due(force=True)
        except Exception:
            log_failure(log, "could not sign the final ledger checkpoint")

    async def _sign_checkpoints(self) -> None:
        """Sign the head when entries have waited ``checkpoint_interval``, even if no more come."""
        pause = max(self.settings.checkpoint_interval.total_seconds() / 2, 0.05)
        await forever(self.ledger.checkpoint_if_due, pause, "signing a ledger checkpoint")

    async def readiness(self) -> dict[str, bool]:
        """Each check that must hold for the process to take traffic."""
        checks = {"redis": False, "subscribers": all(s.running for s in self.broker.subscribers)}
        if "notifier" in self.services:
            checks["webhooks"] = self.webhook_worker.running
        if "ledger" in self.services:
            checks["database"] = await self.ledger.ready()
        try:
            checks["redis"] = bool(await self.api_redis.ping())
        except OSError:
            pass
        except Exception:
            log_failure(log, "readiness: redis ping failed")
        return checks

    def deps(self) -> Deps:
        """The HTTP API's collaborators."""
        return Deps(
            topology=self.topology,
            authenticator=Authenticator(self.config.principals),
            publisher=self.api_notifier.publisher,
            owners=AlertRegister(self.api_redis, dedupe_window=self._dedupe_window),
            inbox=self.api_inbox,
            redis=self.api_redis,
            notifier=self.api_notifier,
            ledger=self.ledger,
            ready=self.readiness,
            metrics=self.metrics,
            screener=self.screener,
            live=self.live,
            console=self.settings.console,
            metrics_token_sha256=self.settings.metrics_token_sha256,
        )
