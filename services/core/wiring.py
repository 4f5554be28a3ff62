"""What the bootstrap hands each service, and what each service gives back.

The bootstrap builds the shared clients once (:class:`Wiring`); each service's ``app.py`` turns
them into its own collaborators and loops (a :class:`Service`). Every process builds all three
services, because the HTTP API serves each one's endpoints; only the services a process *runs*
subscribe to their streams and start their loops.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Coroutine, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from typing import Any, Protocol

from faststream.redis import RedisBroker
from redis.asyncio import Redis

from schemas.topology import Topology
from services.core.bus import RedisPublisher
from services.core.config import FileConfig
from services.core.metrics import Metrics
from services.core.redis_client import RedisTarget
from services.core.settings import Settings
from services.core.streaming import Background, GroupOptions

StartTask = Callable[[Coroutine[Any, Any, None], str], None]
"""Run a named background task until the process stops (cancelled then)."""


def consumer_name(service: str) -> str:
    """Unique per process, so two processes never share a consumer's pending entries."""
    return f"{service}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True, slots=True)
class Wiring:
    """The settings and shared clients of one process, built once by the bootstrap.

    ``redis``: the services' handlers and background loops. ``api_redis``: HTTP requests.
    ``live_redis``: the live streams' blocking reads (see ``Runtime._clients``).
    """

    settings: Settings
    redis_url: str
    """The server every client here talks to (the embedded one's when none was configured)."""
    redis_target: RedisTarget
    """The same, with the Sentinels that name it when they do (what clients connect to)."""
    config: FileConfig
    topology: Topology
    redis: Redis
    api_redis: Redis
    live_redis: Redis
    publisher: RedisPublisher
    """Publishes on ``redis``, for handlers and loops."""
    api_publisher: RedisPublisher
    """Publishes on ``api_redis``, for HTTP requests."""
    metrics: Metrics
    stack: AsyncExitStack
    """What a service opens, it closes here (unwound in reverse when the process stops)."""
    start_task: StartTask

    @property
    def dedupe_window(self) -> int:
        """How long (seconds) an event id is remembered as seen."""
        return int(self.settings.dedupe_window.total_seconds())

    def group_options(self, base: GroupOptions) -> GroupOptions:
        """A service's consumer-group options with the configured claim delay and retry cap."""
        claim_idle_ms = int(self.settings.claim_idle.total_seconds() * 1000)
        return replace(base, claim_idle_ms=claim_idle_ms, retry_cap=self.settings.retry_cap)


class Service(Protocol):
    """One service's part of a process."""

    @property
    def trimmed(self) -> Sequence[str]:
        """The streams this service trims when the process runs it."""

    def subscribe(self, broker: RedisBroker) -> list[Background]:
        """Register its consumer groups on ``broker`` (before it starts); return the claimers
        and group commits to run beside it."""

    async def start(self) -> None:
        """Start the loops it owns (after the broker started), through ``Wiring.start_task``;
        return once they run (a child process included)."""

    async def checks(self) -> dict[str, bool]:
        """Its readiness checks, beside the process's own."""
