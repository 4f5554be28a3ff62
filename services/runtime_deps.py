"""What the HTTP routers need, built once by the bootstrap and found on ``app.state``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Header, Request
from redis.asyncio import Redis

from schemas.topology import Topology
from services.core.alert_register import OwnerCheck
from services.core.auth import Authenticator
from services.core.bus import Publisher
from services.core.config import ConsoleOptions, Principal
from services.core.prometheus import PrometheusMetrics
from services.ingest.screening import Screener
from services.ledger.store import SqlLedger
from services.notifier.handlers import NotifierDeps
from services.notifier.inbox import RedisInbox
from services.notifier.live import LiveFeeds


@dataclass(frozen=True, slots=True)
class Deps:
    """The API's collaborators."""

    topology: Topology
    authenticator: Authenticator
    publisher: Publisher
    owners: OwnerCheck
    """Which alerts other units raised: ingest refuses another unit's change."""
    inbox: RedisInbox
    redis: Redis
    notifier: NotifierDeps
    ledger: SqlLedger
    ready: Callable[[], Awaitable[dict[str, bool]]]
    metrics: PrometheusMetrics
    screener: Screener
    live: LiveFeeds
    console: ConsoleOptions = field(default_factory=ConsoleOptions)
    metrics_token_sha256: str | None = None
    """Who may read /metrics and the readiness checks on the API's address (None: nobody)."""


def deps(request: Request) -> Deps:
    """FastAPI dependency: the collaborators wired at start-up."""
    found: Deps = request.app.state.deps
    return found


def caller(request: Request, authorization: Annotated[str | None, Header()] = None) -> Principal:
    """FastAPI dependency: the authenticated principal (401 otherwise)."""
    return deps(request).authenticator.authenticate(authorization)
