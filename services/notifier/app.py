"""The notifier service on the broker: the alert stream into per-unit inboxes."""

from __future__ import annotations

from collections.abc import Sequence

from faststream.redis import RedisBroker
from redis.asyncio import Redis

from services.core import streams
from services.core.bus import Entry, RedisDeadLetters
from services.core.metrics import NO_METRICS, Metrics
from services.core.streaming import Background, GroupOptions, subscribe_pipelined
from services.notifier.batches import PreparedBatch, commit_alerts, prepare_alerts
from services.notifier.handlers import NotifierDeps

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
