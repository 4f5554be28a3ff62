"""Consumer-group wiring on FastStream: a reader and a claimer per stream.

The services' handlers are plain async functions over :class:`Entry`
batches; this module is where they meet FastStream. For every stream a
service consumes it registers:

* a **reader** — ``XREADGROUP`` in batches of ``max_records``, acknowledged
  (manually) only after the handler returned;
* a **claimer** — ``XAUTOCLAIM`` of entries pending longer than
  ``claim_idle_ms`` (a crashed consumer's, or a batch whose handler raised),
  which gives up on an entry after ``retry_cap`` deliveries and moves it to
  the dead-letter stream, so one bad entry never blocks a stream.

A handler raises only for failures worth retrying (the database is down);
per-item problems it settles itself, so the rest of the batch proceeds.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from faststream import AckPolicy
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.annotations import RedisBatchStreamMessage
from redis.asyncio import Redis

from services import streams
from services.bus import Entry, dead_letter

log = logging.getLogger(__name__)


EntryHandler = Callable[[Sequence[Entry]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class GroupOptions:
    """Tuning of one consumer group's reader and claimer."""

    max_records: int = 500
    polling_ms: int = 100
    claim_idle_ms: int = 30_000
    retry_cap: int = 5


def _entries(stream: str, msg: RedisBatchStreamMessage) -> list[Entry]:
    raw = msg.raw_message
    return [
        Entry(stream, entry_id.decode(), fields.get(streams.EVENT_FIELD.encode(), b""))
        for entry_id, fields in zip(raw["message_ids"], raw["data"], strict=True)
    ]


def subscribe_group(
    broker: RedisBroker,
    redis: Redis,
    *,
    stream: str,
    group: str,
    consumer: str,
    handler: EntryHandler,
    options: GroupOptions = GroupOptions(),
) -> None:
    """Register the reader and the claimer of ``group`` on ``stream``."""

    @broker.subscriber(
        stream=StreamSub(
            stream,
            group=group,
            consumer=consumer,
            batch=True,
            max_records=options.max_records,
            polling_interval=options.polling_ms,
        ),
        ack_policy=AckPolicy.MANUAL,
    )
    async def read(msg: RedisBatchStreamMessage) -> None:
        await handler(_entries(stream, msg))
        await msg.ack()

    @broker.subscriber(
        stream=StreamSub(
            stream,
            group=group,
            consumer=f"{consumer}:claimer",
            batch=True,
            min_idle_time=options.claim_idle_ms,
            polling_interval=max(options.polling_ms, options.claim_idle_ms // 4),
        ),
        ack_policy=AckPolicy.MANUAL,
    )
    async def claim(msg: RedisBatchStreamMessage) -> None:
        entries = _entries(stream, msg)
        retry: list[Entry] = []
        give_up: list[Entry] = []
        for entry in entries:
            deliveries = await _deliveries(redis, stream, group, entry.entry_id)
            (give_up if deliveries > options.retry_cap else retry).append(entry)
        for entry in give_up:
            reason = f"{group}: still failing after {options.retry_cap} deliveries"
            log.error("dead-lettering %s %s: %s", stream, entry.entry_id, reason)
            await dead_letter(
                redis, origin=stream, reason=reason, payload=entry.payload, entry_id=entry.entry_id
            )
        if retry:
            await handler(retry)
        await msg.ack()


async def _deliveries(redis: Redis, stream: str, group: str, entry_id: str) -> int:
    pending = await redis.xpending_range(stream, group, min=entry_id, max=entry_id, count=1)
    return int(pending[0]["times_delivered"]) if pending else 0
