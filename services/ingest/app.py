"""The ingest service on the broker: each publisher's Redis ingress into the canonical streams."""

from __future__ import annotations

from collections.abc import Sequence

from faststream.redis import RedisBroker
from redis.asyncio import Redis

from services.core import streams
from services.core.alert_register import OwnerCheck
from services.core.bus import Entry, Publisher
from services.core.config import Principal, Role
from services.core.metrics import NO_METRICS, Metrics
from services.core.streaming import Claimer, GroupOptions, subscribe_group
from services.ingest.ingress import forward
from services.ingest.screening import Screener

INGEST_OPTIONS = GroupOptions(max_records=500)


def register_ingest(
    broker: RedisBroker,
    redis: Redis,
    principals: Sequence[Principal],
    screener: Screener,
    publisher: Publisher,
    consumer: str,
    options: GroupOptions = INGEST_OPTIONS,
    metrics: Metrics = NO_METRICS,
    owners: OwnerCheck | None = None,
) -> list[Claimer]:
    """Subscribe ingest's consumer group to every publisher's ingress stream; return the
    claimers to run."""
    claimers = []
    for agency in principals:
        if agency.role is not Role.PUBLISHER:
            continue

        async def handle(entries: Sequence[Entry], agency: Principal = agency) -> None:
            await forward(entries, agency, screener, publisher, redis, metrics, owners)

        claimers.append(
            subscribe_group(
                broker,
                redis,
                stream=streams.ingress_stream(agency.name),
                group=streams.INGEST_GROUP,
                consumer=consumer,
                handler=handle,
                options=options,
                metrics=metrics,
            )
        )
    return claimers
