"""Slowing down wrong tokens: after a few failures, sign-ins must wait, longer each time.

Failures are counted in Redis per client address and per digest of the token tried (so
several API processes behind a load balancer count together). The ``free``-th failure within
``window`` seconds, and every one after it, makes that client (and that token) wait
``base · 2^(n - free)`` seconds, at most ``cap``; while it waits, a sign-in is answered 429
with ``Retry-After`` without looking at the token at all, so waiting cannot be skipped by
guessing faster. A success clears the client's count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from redis.asyncio import Redis

from services.core import streams


@dataclass(frozen=True, slots=True)
class SigninThrottle:
    """Counts failed sign-ins and says how long the next one must wait."""

    redis: Redis
    free: int = 5
    base: float = 1.0
    cap: float = 300.0
    window: int = 900

    async def wait(self, client: str, token_digest: str) -> float:
        """Seconds before this client (or this token) may try again; 0 if it may now."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for kind, subject in self._subjects(client, token_digest):
                pipe.pttl(streams.console_signin_block_key(kind, subject))
            remaining = await pipe.execute()
        return max([ms / 1000 for ms in remaining if ms > 0], default=0.0)

    async def failed(self, client: str, token_digest: str) -> float:
        """Count a failure; returns the wait it imposes (0 while still within ``free``)."""
        longest = 0.0
        for kind, subject in self._subjects(client, token_digest):
            key = streams.console_signin_failures_key(kind, subject)
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, self.window)
                count, _ = await pipe.execute()
            if count >= self.free:
                wait = min(self.base * 2 ** (count - self.free), self.cap)
                block = streams.console_signin_block_key(kind, subject)
                await self.redis.set(block, "1", px=max(math.ceil(wait * 1000), 1))
                longest = max(longest, wait)
        return longest

    async def succeeded(self, client: str) -> None:
        """A right token: this client's earlier failures are forgiven."""
        await self.redis.delete(streams.console_signin_failures_key("client", client))

    @staticmethod
    def _subjects(client: str, token_digest: str) -> tuple[tuple[str, str], ...]:
        return (("client", client), ("token", token_digest))
