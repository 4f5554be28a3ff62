"""The canonical streams as the services see them: groups, idempotent publish, dead letters.

Publishing goes through one Lua script so that "is this ``(source, id)``
new?" and "append it to its stream" happen atomically, for a whole batch at
once: a batch is all-or-nothing and a retried publish never appends twice.
A durable publisher also waits, on the same connection, until the server
has fsynced the batch to its append-only file (``WAITAOF``); a replicated one
first until every replica has it (``WAIT``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from redis._parsers.base import BaseParser
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, OutOfMemoryError, ReadOnlyError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import EncodableT, FieldT

from schemas.events import CloudEvent
from schemas.vocabulary import EventType
from services.core import streams

# KEYS[1], KEYS[2] = this and the previous window's seen hash; KEYS[3..] = streams;
# ARGV[1] = seconds the current hash lives; then (stream index, seen field, payload)*
_PUBLISH_LUA = """
local flags = {}
for i = 2, #ARGV, 3 do
  local field = ARGV[i + 1]
  local prior = redis.call('HGET', KEYS[1], field) or redis.call('HGET', KEYS[2], field)
  if prior then
    -- written again: a WAITAOF after this script then also covers the first publish's write
    redis.call('HSET', KEYS[1], field, prior)
    flags[#flags + 1] = 0
  else
    local entry = redis.call('XADD', KEYS[tonumber(ARGV[i])], '*', '__data__', ARGV[i + 2])
    redis.call('HSET', KEYS[1], field, entry)
    flags[#flags + 1] = 1
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return flags
"""


class Unavailable(Exception):
    """A dependency (the database, the server) is down: try again later.

    Handlers raise it, rather than what their driver raised, for failures
    that say nothing about the entry; a claimer never counts them toward an
    entry's retry cap, so an outage never sends good events to the dead letters.
    """


class CannotPersist(ResponseError):
    """``MISCONF``: the server cannot write its append-only file (its volume is full, say) and
    refuses every write until it can again; it retries by itself."""


# redis-py turns an error reply into the class registered for its first word; MISCONF has
# none (a plain ResponseError, a 500 and a claimer's retry counted), so it gets ours.
BaseParser.EXCEPTION_CLASSES["MISCONF"] = CannotPersist

OUTAGES = (
    Unavailable,
    RedisConnectionError,
    RedisTimeoutError,
    OutOfMemoryError,
    ReadOnlyError,
    CannotPersist,
)
"""Failures that say nothing about the work at hand: the server or the database is away
(a server still loading its AOF answers ``BusyLoadingError``, a ``ConnectionError`` too),
or the server is full (``maxmemory`` with ``noeviction`` refuses writes until consumers
and trimming free memory), or its disk is (``MISCONF``, :class:`CannotPersist`), or it was
demoted to a replica in a failover (``READONLY``: a Sentinel client reconnects to the new
primary on the next command): the caller answers 503 or retries, nothing is dropped."""


REFUSALS_FOR_WANT_OF_REPLICAS = ("NOREPLICAS", "MASTERDOWN")
"""Error replies of a server that is fine but will not write now: a primary without enough
replicas (``min-replicas-to-write``), a replica that lost its primary."""


def as_outage(exc: Exception) -> Exception:
    """``exc``, or an :class:`Unavailable` when the server refused for want of replicas."""
    if isinstance(exc, ResponseError) and str(exc).startswith(REFUSALS_FOR_WANT_OF_REPLICAS):
        return Unavailable(f"the server refuses writes for now: {exc}")
    return exc


@dataclass(frozen=True, slots=True)
class Entry:
    """One stream entry as handlers see it."""

    stream: str
    entry_id: str
    payload: bytes
    """The CloudEvent JSON (empty when the entry had no event field)."""


class DeadLetters(Protocol):
    """Where entries that cannot be handled are kept, with the reason."""

    async def put(self, entry: Entry, reason: str) -> None:
        """Keep one entry and why it was refused."""
        ...


@dataclass(frozen=True, slots=True)
class Encoded:
    """An event as published: what the publisher needs of it, and its canonical wire JSON.

    For events encoded ahead of the publish (the notifier renders its receipts
    while the previous batch is being written).
    """

    type: EventType
    source: str
    id: str
    payload: bytes
    """What :meth:`CloudEvent.to_json` gives, byte for byte."""

    @classmethod
    def of(cls, event: CloudEvent) -> Encoded:
        """Encode ``event`` now."""
        return cls(event.type, event.source, event.id, event.to_json())


class Publisher(Protocol):
    """Appends canonical events to their streams, idempotently by ``(source, id)``."""

    async def publish(self, events: Sequence[CloudEvent | Encoded]) -> list[bool]:
        """Publish all or nothing; per event, True if new and False if already published."""
        ...


def seen_field(event: CloudEvent | Encoded) -> str:
    """The idempotency key of an event: its source and id."""
    return f"{event.source} {event.id}"


DEDUPE_WINDOW = 7 * 86400
"""Seconds during which a re-published ``(source, id)`` is reported as a duplicate and not
appended again (later, the ledger and the inboxes still ignore it: they key on it too)."""
FSYNC_TIMEOUT_MS = 5000
"""How long a durable publish waits for the server's fsync before reporting it unavailable."""
REPLICA_TIMEOUT_MS = 2000
"""How long a replicated publish waits for every replica (``WAIT``) before reporting them
unavailable: a replica that is down costs each publish this much, then a 503."""


class ReplicasMissing(Unavailable):
    """Fewer replicas than configured confirmed a replicated publish: it may be lost in a
    failover, so it is not acknowledged (the publisher retries; the dedupe makes that safe)."""


class RedisPublisher:
    """:class:`Publisher` on Redis Streams; ``durable``: return only once fsynced (WAITAOF);
    ``replicas``: and once that many replicas have the events (WAIT), else
    :class:`ReplicasMissing`."""

    def __init__(
        self,
        redis: Redis,
        *,
        durable: bool = False,
        replicas: int = 0,
        dedupe_window: int = DEDUPE_WINDOW,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._script = redis.register_script(_PUBLISH_LUA)
        self.durable, self.dedupe_window, self._clock = (
            durable or replicas > 0,
            dedupe_window,
            clock,
        )
        self.replicas = replicas

    async def publish(self, events: Sequence[CloudEvent | Encoded]) -> list[bool]:
        if not events:
            return []
        keys = [*streams.seen_keys(self.dedupe_window, self._clock()), *streams.CANONICAL_STREAMS]
        argv: list[str | bytes] = [str(2 * self.dedupe_window)]
        for event in events:
            encoded = event if isinstance(event, Encoded) else Encoded.of(event)
            index = streams.CANONICAL_STREAMS.index(streams.stream_for(encoded.type)) + 3
            argv += [str(index), seen_field(encoded), encoded.payload]
        if not self.durable:
            try:
                flags = await self._script(keys=keys, args=argv)
            except ResponseError as exc:
                raise as_outage(exc) from exc
            return [bool(flag) for flag in flags]
        flags, *waits = await self._publish_and_wait(keys, argv)
        if isinstance(flags, NoScriptError):  # a restarted or newly promoted server lacks it
            await self._redis.script_load(_PUBLISH_LUA)
            flags, *waits = await self._publish_and_wait(keys, argv)
        if isinstance(flags, Exception):
            raise as_outage(flags)
        if self.replicas:
            replicated, *waits = waits
            self._check_replicated(replicated)
        synced = waits[0]
        if isinstance(synced, Exception):  # e.g. the server runs without an append-only file
            raise Unavailable(f"the server cannot confirm an fsync: {synced}") from synced
        if synced[0] < 1:
            raise Unavailable(f"the server did not fsync within {FSYNC_TIMEOUT_MS} ms")
        return [bool(flag) for flag in flags]

    async def _publish_and_wait(self, keys: list[str], argv: list[str | bytes]) -> list[Any]:
        # One connection for both (WAITAOF covers that client's writes); EVALSHA directly,
        # as a pipeline's script check (SCRIPT EXISTS) needs a permission the ACL users lack.
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.evalsha(self._script.sha, len(keys), *keys, *argv)
            if self.replicas:
                pipe.wait(self.replicas, REPLICA_TIMEOUT_MS)
            pipe.waitaof(1, 0, FSYNC_TIMEOUT_MS)
            return await pipe.execute(raise_on_error=False)

    def _check_replicated(self, replicated: object) -> None:
        """Raise unless ``WAIT``'s answer says every replica has the batch."""
        if isinstance(replicated, Exception):
            raise Unavailable(f"the server cannot count its replicas: {replicated}") from replicated
        if not isinstance(replicated, int) or replicated < self.replicas:
            raise ReplicasMissing(
                f"{replicated} of {self.replicas} replicas confirmed the events within "
                f"{REPLICA_TIMEOUT_MS} ms"
            )


async def ensure_groups(redis: Redis, publishers: Iterable[str] = ()) -> None:
    """Create every consumer group at id ``0`` (MKSTREAM), before anything publishes; with
    ``publishers``, the groups of their ingress streams too.

    Created at ``0`` rather than ``$`` so that nothing appended before a
    service first starts is skipped; an existing group is left as it is.
    """
    for stream, groups in streams.groups(publishers).items():
        for group in groups:
            try:
                await redis.xgroup_create(stream, group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise


def dead_letter_fields(
    *, origin: str, reason: str, payload: bytes | str, entry_id: str = ""
) -> dict[FieldT, EncodableT]:
    """The fields of one dead-letter entry (for callers that append several in a pipeline)."""
    return {
        "origin": origin,
        "entry_id": entry_id,
        "reason": reason,
        "at": datetime.now(UTC).isoformat(),
        "payload": payload,
    }


async def dead_letter(
    redis: Redis, *, origin: str, reason: str, payload: bytes | str, entry_id: str = ""
) -> str:
    """Keep an entry that could not be processed, with where it came from and why."""
    fields = dead_letter_fields(origin=origin, reason=reason, payload=payload, entry_id=entry_id)
    entry = await redis.xadd(streams.DEAD_LETTERS, fields)
    return entry.decode() if isinstance(entry, bytes) else str(entry)


class RedisDeadLetters:
    """:class:`DeadLetters` on the dead-letter stream."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def put(self, entry: Entry, reason: str) -> None:
        await dead_letter(
            self._redis,
            origin=entry.stream,
            reason=reason,
            payload=entry.payload,
            entry_id=entry.entry_id,
        )
