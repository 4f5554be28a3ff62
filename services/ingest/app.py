"""The ingest service on the broker: the Redis ingress into the canonical streams."""

from __future__ import annotations

from collections.abc import Sequence

from faststream.redis import RedisBroker
from redis.asyncio import Redis

from schemas.topology import Topology
from services import streams
from services.alert_register import OwnerCheck
from services.bus import Entry, Publisher
from services.ingest.ingress import forward
from services.metrics import NO_METRICS, Metrics
from services.streaming import Claimer, GroupOptions, subscribe_group

INGEST_OPTIONS = GroupOptions(max_records=500)


def register_ingest(
    broker: RedisBroker,
    redis: Redis,
    topology: Topology,
    publisher: Publisher,
    consumer: str,
    options: GroupOptions = INGEST_OPTIONS,
    metrics: Metrics = NO_METRICS,
    owners: OwnerCheck | None = None,
) -> list[Claimer]:
    """Subscribe ingest's consumer group to the ingress stream; return the claimer to run."""

    async def handle(entries: Sequence[Entry]) -> None:
        await forward(entries, topology, publisher, redis, metrics, owners)

    claimer = subscribe_group(
        broker,
        redis,
        stream=streams.INGRESS,
        group=streams.INGEST_GROUP,
        consumer=consumer,
        handler=handle,
        options=options,
        metrics=metrics,
    )
    return [claimer]
