"""The ledger service on the broker: every canonical stream into the SQL ledger."""

from __future__ import annotations

from collections.abc import Sequence

from faststream.redis import RedisBroker
from redis.asyncio import Redis

from services.core import streams
from services.core.bus import Entry, RedisDeadLetters
from services.core.metrics import LEDGER_APPENDED, LEDGER_DUPLICATES, NO_METRICS, Metrics
from services.core.streaming import Background, GroupOptions, subscribe_pipelined
from services.ledger.handlers import append_prepared, prepare_entries
from services.ledger.records import Record
from services.ledger.store import SqlLedger

LEDGER_OPTIONS = GroupOptions(max_records=500, queue_batches=8)
"""Up to 8 batches of 500 read ahead of the commit: one transaction takes what is queued."""


def register_ledger(
    broker: RedisBroker,
    redis: Redis,
    ledger: SqlLedger,
    consumer: str,
    options: GroupOptions = LEDGER_OPTIONS,
    metrics: Metrics = NO_METRICS,
) -> list[Background]:
    """Subscribe the ledger's consumer group to every canonical stream.

    Returns what to run beside the broker: the group commit (the one writer
    of the chain in this process) and a claimer per stream.
    """
    dead = RedisDeadLetters(redis)

    async def prepare(entries: Sequence[Entry]) -> list[Record]:
        return await prepare_entries(entries, dead)

    async def commit(batches: Sequence[list[Record]]) -> None:
        result = await append_prepared(batches, ledger)
        metrics.inc(LEDGER_APPENDED, len(result.appended))
        metrics.inc(LEDGER_DUPLICATES, result.duplicates)

    return subscribe_pipelined(
        broker,
        redis,
        streams=streams.CANONICAL_STREAMS,
        group=streams.LEDGER_GROUP,
        consumer=consumer,
        prepare=prepare,
        commit=commit,
        options=options,
        metrics=metrics,
    )
