"""The notifier service in a process: the alert stream into per-unit inboxes, escalation, inbox
retention, the webhook worker, and what its HTTP endpoints work with."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

from faststream.redis import RedisBroker
from redis.asyncio import Redis

from services.core import streams
from services.core.bus import Entry, RedisDeadLetters
from services.core.loops import forever
from services.core.metrics import ESCALATIONS, NO_METRICS, Metrics
from services.core.operations import OperationRegister
from services.core.streaming import Background, GroupOptions, subscribe_pipelined
from services.core.wiring import Wiring, consumer_name
from services.notifier.batches import PreparedBatch, commit_alerts, prepare_alerts
from services.notifier.escalation import escalate_due
from services.notifier.handlers import NotifierDeps
from services.notifier.inbox import RedisInbox
from services.notifier.live import LiveFeeds
from services.notifier.retention import BATCH, expire_inboxes
from services.notifier.webhook_metrics import CountedWebhookOutcomes
from services.notifier.webhook_outcomes import RecordedWebhookOutcomes
from services.notifier.webhook_process import WebhookProcess
from services.notifier.webhook_queue import WebhookQueue
from services.notifier.webhooks import WebhookWorker, WorkerOptions

NOTIFIER_OPTIONS = GroupOptions(max_records=100, queue_batches=4)
"""Batches of 100 alerts; up to 4 rendered ahead of the writes (see services/notifier/batches.py)."""


def register_notifier(
    broker: RedisBroker,
    redis: Redis,
    deps: NotifierDeps,
    consumer: str,
    options: GroupOptions = NOTIFIER_OPTIONS,
    metrics: Metrics = NO_METRICS,
) -> list[Background]:
    """Subscribe the notifier's consumer group to the alert stream.

    Returns what to run beside the broker: the writer of prepared batches and the claimer.
    """
    dead = RedisDeadLetters(redis)

    async def prepare(entries: Sequence[Entry]) -> PreparedBatch:
        return await prepare_alerts(entries, deps, dead)

    async def commit(batches: Sequence[PreparedBatch]) -> None:
        await commit_alerts(batches, deps, dead)

    return subscribe_pipelined(
        broker,
        redis,
        streams=[streams.ALERTS],
        group=streams.NOTIFIER_GROUP,
        consumer=consumer,
        prepare=prepare,
        commit=commit,
        options=options,
        metrics=metrics,
    )


class NotifierService:
    """The notifier's part of a process: the inboxes (for its handlers and, on the API's
    client, for the HTTP API), the live streams, and the loops it runs."""

    def __init__(self, wiring: Wiring, *, webhooks_apart: bool = False) -> None:
        """``webhooks_apart``: the webhook worker runs in a child process (``liaison up``, so
        that delivery has a core of its own)."""
        self._wiring = wiring
        self._webhooks_apart = webhooks_apart
        config, settings = wiring.config, wiring.settings
        self.inbox = self._inbox(wiring.redis)
        self.deps = NotifierDeps(
            wiring.topology,
            self.inbox,
            wiring.publisher,
            deadlines=config.ack_deadlines,
            webhooks=WebhookQueue(wiring.redis, config.webhooks),
            metrics=wiring.metrics,
            operations=OperationRegister(wiring.redis),
        )
        self.api_inbox = self._inbox(wiring.api_redis)
        self.api_deps = replace(
            self.deps,
            inbox=self.api_inbox,
            publisher=wiring.api_publisher,
            webhooks=WebhookQueue(wiring.api_redis, config.webhooks),
            operations=OperationRegister(wiring.api_redis),
        )
        """The same handlers on the API's client."""
        self.live = LiveFeeds(
            wiring.live_redis,
            wiring.api_redis,
            inbox=self._inbox,
            heartbeat=settings.live_heartbeat.total_seconds(),
            per_principal=settings.live_streams_per_principal,
        )
        wiring.stack.push_async_callback(self.live.aclose)
        self.webhook_worker: WebhookWorker | WebhookProcess | None = None

    @property
    def trimmed(self) -> tuple[str, ...]:
        """The webhook queue's stream."""
        return (streams.WEBHOOKS,)

    def subscribe(self, broker: RedisBroker) -> list[Background]:
        """The alert stream's reader, its claimer and the writer of prepared batches."""
        w = self._wiring
        options = w.group_options(NOTIFIER_OPTIONS)
        return register_notifier(
            broker, w.redis, self.deps, consumer_name("notifier"), options, w.metrics
        )

    async def start(self) -> None:
        """Escalation, inbox retention and the webhook worker."""
        w = self._wiring
        w.start_task(self._escalate(), "escalation")
        w.start_task(self._expire_inboxes(), "inbox retention")
        if self._webhooks_apart:
            apart = self.webhook_worker = WebhookProcess(w.redis_target, w.metrics)
            w.stack.push_async_callback(apart.stop)
            await apart.start()
            return
        outcomes = RecordedWebhookOutcomes(w.redis, w.publisher)
        self.webhook_worker = WebhookWorker(
            w.redis,
            w.config.webhooks,
            CountedWebhookOutcomes(outcomes, w.metrics),
            consumer_name("webhooks"),
            options=WorkerOptions(claim_idle=w.settings.claim_idle.total_seconds()),
        )
        w.start_task(self.webhook_worker.run(), "webhooks")

    async def checks(self) -> dict[str, bool]:
        """The webhook worker runs."""
        return {"webhooks": self.webhook_worker is not None and self.webhook_worker.running}

    def _inbox(self, client: Redis) -> RedisInbox:
        """The inboxes (and the register of alerts), through ``client``."""
        settings = self._wiring.settings
        return RedisInbox(
            client,
            dedupe_window=self._wiring.dedupe_window,
            retention=settings.inbox_retention.total_seconds(),
        )

    async def _escalate(self) -> None:
        """Escalate deliveries past their deadline, checking often enough for the shortest."""
        deadlines = self._wiring.config.ack_deadlines
        shortest = min(deadlines.flash, deadlines.urgent, deadlines.routine).total_seconds()

        async def escalate() -> None:
            self._wiring.metrics.inc(ESCALATIONS, await escalate_due(self.deps))

        await forever(escalate, min(max(shortest / 10, 0.05), 1.0), "escalation")

    async def _expire_inboxes(self) -> None:
        """Remove alerts from the inboxes once their retention has passed."""
        retention = self._wiring.settings.inbox_retention.total_seconds()

        async def expire() -> None:
            while await expire_inboxes(self._wiring.redis, time.time()) == BATCH:
                pass  # a backlog: keep going until a short batch

        await forever(expire, min(max(retention / 10, 0.05), 60.0), "expiring inboxes")
