"""Consumer-group wiring on FastStream: a reader and a claimer per stream.

The services' handlers are plain async functions over :class:`Entry`
batches; this module is where they meet FastStream. For every stream a
service consumes it registers:

* a **reader** — ``XREADGROUP`` in batches of ``max_records``, acknowledged
  (manually) only after the handler returned;
* a **claimer** (:mod:`services.core.claimer`) — ``XAUTOCLAIM`` of entries
  pending longer than ``claim_idle_ms`` (a crashed consumer's, or a batch
  whose handler raised), which gives up on an entry after ``retry_cap``
  deliveries and moves it to the dead-letter stream, so one bad entry never
  blocks a stream.

:func:`subscribe_pipelined` is the variant for a serial writer (the
ledger): reading overlaps committing. Readers prepare their batches and
queue them; one :class:`GroupCommit` task commits everything queued in one
call and only then acknowledges it.

A handler raises only for failures worth retrying (the database is down);
per-item problems it settles itself, so the rest of the batch proceeds.

:func:`redis_broker` builds the broker the readers run on: its connections
have no read timeout (see there).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from faststream import AckPolicy
from faststream.redis import RedisBroker, RedisSentinelBroker, StreamSub
from faststream.redis.annotations import RedisBatchStreamMessage
from faststream.redis.subscriber.usecases import stream_subscriber
from redis.asyncio import Redis

from services.core.bus import Entry
from services.core.claimer import Claimer, EntryHandler, GroupOptions, stream_entry
from services.core.group_commit import GroupCommit
from services.core.metrics import NO_METRICS, Metrics
from services.core.redis_client import RedisTarget, sentinel_options

__all__ = [
    "Background",
    "Claimer",
    "GroupOptions",
    "redis_broker",
    "subscribe_group",
    "subscribe_pipelined",
]

log = logging.getLogger(__name__)

T = TypeVar("T")


class Background(Protocol):
    """A loop a service runs beside its broker until cancelled."""

    @property
    def name(self) -> str:
        """What it is, for logs."""
        ...

    async def run(self) -> None:
        """Run until cancelled."""
        ...


DEFAULT_OPTIONS = GroupOptions()


READ_ERROR_PAUSE = 0.5
"""Seconds a reader waits after a failed read before reading again (FastStream's own is 5 s).

A failover fails every reader's ``XREADGROUP`` once (the demoted primary unblocks them, or
the connection drops): the next read asks the Sentinels and finds the new primary. With
FastStream's 5 s every service stood still that long after each failover; a server that
stays away is retried twice a second, each attempt bounded by the connect timeout."""
stream_subscriber.CONSUME_ERROR_BACKOFF_SECONDS = READ_ERROR_PAUSE  # type: ignore[attr-defined,assignment]


def redis_broker(url: str | RedisTarget) -> RedisBroker:
    """The broker of a service's stream readers, on connections without a read timeout.

    redis-py 8 gives every connection a 5 s read timeout. A reader always has
    an ``XREADGROUP … BLOCK polling_ms`` in flight, so when the process stops
    for longer than that (SIGSTOP, a paused VM or container, a stalled host)
    the timeout fires on resuming, before the reply already received is read:
    FastStream drops the connection and waits 5 s before reading again, and
    the entries the server had delivered on that read stay pending until the
    claimer takes them over (``claim_idle_ms``, 30 s). The server answers
    every read within ``polling_ms``; a dead peer is still noticed by TCP
    keepalive (on by default in redis-py 8: ~45 s).

    With Sentinels, FastStream's Sentinel broker: its readers ask the Sentinels for the primary
    on every reconnect, so they follow a failover.
    """
    logger = logging.getLogger("liaison.broker")
    if isinstance(url, RedisTarget) and url.sentinels:
        options = sentinel_options(url)
        asking = {k: options[k] for k in ("username", "password") if options.get(k) is not None}
        return RedisSentinelBroker(
            sentinels=list(url.sentinels),
            sentinel_master_name=url.master,
            sentinel_kwargs=asking,
            logger=logger,
            socket_timeout=None,
            **options,
        )
    return RedisBroker(str(url), logger=logger, socket_timeout=None)


def _entries(stream: str, msg: RedisBatchStreamMessage) -> list[Entry]:
    raw = msg.raw_message
    return [
        stream_entry(stream, entry_id, fields)
        for entry_id, fields in zip(raw["message_ids"], raw["data"], strict=True)
    ]


async def _raw_parser(msg: Any, original: Callable[[Any], Awaitable[Any]]) -> Any:
    """FastStream's parser, kept away from the payloads.

    Its batch parser decodes and re-encodes every body as JSON, and raises on
    bytes that are not UTF-8 — before any handler runs, so such an entry would
    stay pending forever; and it costs more than the handler's own work. It
    sees no entries here (ids and acks go by ``raw_message``); handlers read
    the raw entries themselves.
    """
    parsed = await original({**msg, "data": []})
    parsed.raw_message = msg
    return parsed


def subscribe_group(
    broker: RedisBroker,
    redis: Redis,
    *,
    stream: str,
    group: str,
    consumer: str,
    handler: EntryHandler,
    options: GroupOptions = DEFAULT_OPTIONS,
    metrics: Metrics = NO_METRICS,
) -> Claimer:
    """Register the reader of ``group`` on ``stream``; return its claimer, for the caller to run."""

    async def read(msg: RedisBatchStreamMessage) -> None:
        await handler(_entries(stream, msg))
        await msg.ack()

    _reader(broker, stream, group, consumer, options, read)
    return Claimer(redis, stream, group, f"{consumer}:claimer", handler, options, metrics)


def subscribe_pipelined(
    broker: RedisBroker,
    redis: Redis,
    *,
    streams: Sequence[str],
    group: str,
    consumer: str,
    prepare: Callable[[Sequence[Entry]], Awaitable[T]],
    commit: Callable[[Sequence[T]], Awaitable[object]],
    options: GroupOptions = DEFAULT_OPTIONS,
    metrics: Metrics = NO_METRICS,
) -> list[Background]:
    """Readers of ``group`` on every stream feeding one :class:`GroupCommit`.

    Each reader prepares its batch and queues it, then reads on; the group
    commit commits queued batches together and acknowledges them after. The
    claimers (returned with the writer, for the caller to run) prepare and
    commit the batches they reclaim directly.
    """
    writer = GroupCommit(redis, group, commit, options.queue_batches)

    async def handle(entries: Sequence[Entry]) -> None:  # the claimers' path
        await commit([await prepare(entries)])

    def reader(stream: str) -> None:
        async def read(msg: RedisBatchStreamMessage) -> None:  # the group commit acknowledges
            entries = _entries(stream, msg)
            await writer.put(stream, entries, await prepare(entries))

        _reader(broker, stream, group, consumer, options, read)

    claimers: list[Background] = []
    for stream in streams:
        reader(stream)
        claimers.append(
            Claimer(redis, stream, group, f"{consumer}:claimer", handle, options, metrics)
        )
    return [writer, *claimers]


def _reader(
    broker: RedisBroker,
    stream: str,
    group: str,
    consumer: str,
    options: GroupOptions,
    read: Callable[[RedisBatchStreamMessage], Awaitable[None]],
) -> None:
    """Subscribe ``read`` to batches of ``group`` on ``stream``, acknowledged by ``read`` itself."""
    broker.subscriber(
        stream=StreamSub(
            stream,
            group=group,
            consumer=consumer,
            batch=True,
            max_records=options.max_records,
            polling_interval=options.polling_ms,
        ),
        ack_policy=AckPolicy.MANUAL,
        parser=_raw_parser,
    )(read)
