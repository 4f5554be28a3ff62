"""The ledger service on the broker: every canonical stream into the SQL ledger."""

from __future__ import annotations

from collections.abc import Sequence

from faststream.redis import RedisBroker
from redis.asyncio import Redis

from services import streams
from services.bus import Entry, RedisDeadLetters
from services.ledger.handlers import record_events
from services.ledger.store import SqlLedger
from services.streaming import Claimer, GroupOptions, subscribe_group

LEDGER_OPTIONS = GroupOptions(max_records=500)


def register_ledger(
    broker: RedisBroker,
    redis: Redis,
    ledger: SqlLedger,
    consumer: str,
    options: GroupOptions = LEDGER_OPTIONS,
) -> list[Claimer]:
    """Subscribe the ledger's consumer group to every canonical stream; return the claimers to run."""
    dead = RedisDeadLetters(redis)

    async def handle(entries: Sequence[Entry]) -> None:
        await record_events(entries, ledger, dead)

    return [
        subscribe_group(
            broker,
            redis,
            stream=stream,
            group=streams.LEDGER_GROUP,
            consumer=consumer,
            handler=handle,
            options=options,
        )
        for stream in streams.CANONICAL_STREAMS
    ]
