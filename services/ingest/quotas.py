"""Fair shares: each publisher's rate limit on ``POST /v1/events``, shared by every API process.

A publisher with ``limits`` in the configuration (:class:`~services.core.config.PublisherLimits`)
draws one token per event from a bucket that refills at ``events_per_second`` up to
``burst``. The bucket is a hash in Redis (:func:`~services.core.streams.quota_key`) updated by
one Lua script on the server's clock, so several API processes (and their clocks) share one
bucket and a flooding publisher cannot get more by spreading its requests over them. A batch
is taken whole or not at all (publishing is all or nothing); refused, the publisher is told how
long to wait (429, ``Retry-After``) and nothing is taken, so a publisher that waits as told is
admitted. Publishers without ``limits`` are not counted (one round trip saved).
"""

from __future__ import annotations

import math

from redis.asyncio import Redis

from services.core import streams
from services.core.config import Principal
from services.core.problems import Problem

_TAKE = """
local rate, burst, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local held = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(held[1]) or burst, tonumber(held[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= n then tokens = tokens - n else wait = math.ceil((n - tokens) / rate) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate) + 1000)
return wait
"""
"""ARGV: tokens per millisecond, burst, events. Returns 0 (taken) or the milliseconds until
``n`` tokens will be there (nothing taken)."""


class Quotas:
    """The publishers' token buckets on the API's Redis client."""

    def __init__(self, redis: Redis) -> None:
        self._take = redis.register_script(_TAKE)

    async def wait(self, publisher: Principal, events: int) -> float:
        """Seconds ``publisher`` must wait before ``events`` more fit its share (0: taken now)."""
        limits = publisher.limits
        if limits is None:
            return 0.0
        rate = limits.events_per_second / 1000
        keys = [streams.quota_key(publisher.name)]
        waited = await self._take(keys=keys, args=[repr(rate), limits.burst, events])
        return int(waited) / 1000

    async def admit(self, publisher: Principal, events: int) -> None:
        """Take ``events`` from the publisher's share, or raise the problem to answer: 413 for
        a batch over its ``max_batch``, 429 with ``Retry-After`` when over its rate."""
        limits = publisher.limits
        if limits is None:
            return
        if events > limits.batch:
            raise Problem(
                413,
                "Batch too large",
                f"{publisher.name} may publish at most {limits.batch} events per request",
            )
        waited = await self.wait(publisher, events)
        if waited > 0:
            raise Problem(
                429,
                "Too many events",
                f"{publisher.name} may publish {limits.events_per_second:g} events per second "
                f"(bursts of {limits.burst}); retry after the time given",
                headers={"Retry-After": str(max(1, math.ceil(waited)))},
                extensions={"retry_after": waited},
            )
