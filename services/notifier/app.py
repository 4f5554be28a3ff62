"""The notifier service on the broker: the alert stream into per-unit inboxes."""

from __future__ import annotations

from collections.abc import Sequence

from faststream.redis import RedisBroker
from redis.asyncio import Redis

from services import streams
from services.bus import Entry, RedisDeadLetters
from services.metrics import NO_METRICS, Metrics
from services.notifier.handlers import NotifierDeps, handle_alert_entries
from services.streaming import Claimer, GroupOptions, subscribe_group

NOTIFIER_OPTIONS = GroupOptions(max_records=100)


def register_notifier(
    broker: RedisBroker,
    redis: Redis,
    deps: NotifierDeps,
    consumer: str,
    options: GroupOptions = NOTIFIER_OPTIONS,
    metrics: Metrics = NO_METRICS,
) -> list[Claimer]:
    """Subscribe the notifier's consumer group to the alert stream; return the claimer to run."""
    dead = RedisDeadLetters(redis)

    async def handle(entries: Sequence[Entry]) -> None:
        await handle_alert_entries(entries, deps, dead)

    claimer = subscribe_group(
        broker,
        redis,
        stream=streams.ALERTS,
        group=streams.NOTIFIER_GROUP,
        consumer=consumer,
        handler=handle,
        options=options,
        metrics=metrics,
    )
    return [claimer]
