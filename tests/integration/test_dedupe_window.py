"""Publish-side idempotency holds for at least one dedupe window, and its memory for two."""

from __future__ import annotations

from redis.asyncio import Redis

from schemas.events import CloudEvent
from services.core import streams
from services.core.bus import RedisPublisher
from tests import factories

WINDOW = 100


class Clock:
    """A settable clock (seconds)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_a_republish_within_the_window_is_a_duplicate_and_later_is_new_again(
    redis: Redis,
) -> None:
    clock = Clock(1000.0)
    publisher = RedisPublisher(redis, dedupe_window=WINDOW, clock=clock)
    retried, forgotten = (CloudEvent.model_validate(factories.seizure()) for _ in range(2))
    assert await publisher.publish([retried, forgotten]) == [True, True]
    clock.now = 1099.0  # same window
    assert await publisher.publish([retried]) == [False]
    clock.now = 1150.0  # the next window still sees the previous one
    assert await publisher.publish([retried]) == [False]
    clock.now = 1250.0  # two windows on: only what was re-published in the last one is known
    assert await publisher.publish([retried, forgotten]) == [False, True]
    assert await redis.xlen(streams.SEIZURES) == 3


async def test_each_window_expires_after_two(redis: Redis) -> None:
    publisher = RedisPublisher(redis, dedupe_window=WINDOW, clock=lambda: 1000.0)
    await publisher.publish([CloudEvent.model_validate(factories.seizure())])
    [key] = [k async for k in redis.scan_iter(match=f"{streams.SEEN}:*")]
    assert key.decode() == f"{streams.SEEN}:10"
    assert 0 < await redis.ttl(key) <= 2 * WINDOW
