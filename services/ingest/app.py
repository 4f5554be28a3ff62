"""The ingest service in a process: each publisher's Redis ingress into the canonical streams,
and what its HTTP endpoint works with."""

from __future__ import annotations

from collections.abc import Sequence

from faststream.redis import RedisBroker
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.core import streams
from services.core.alert_register import AlertRegister, OwnerCheck
from services.core.bus import Entry, Publisher
from services.core.config import Principal, Role
from services.core.keyring import Registry
from services.core.metrics import NO_METRICS, Metrics
from services.core.streaming import Background, Claimer, GroupOptions, subscribe_group
from services.core.wiring import Wiring, consumer_name
from services.ingest.backpressure import BackPressure, WaterMarks
from services.ingest.ingress import forward
from services.ingest.quotas import Quotas
from services.ingest.screening import Screener

INGEST_OPTIONS = GroupOptions(max_records=500)


def register_ingest(
    broker: RedisBroker,
    redis: Redis,
    principals: Sequence[Principal],
    screener: Screener,
    publisher: Publisher,
    consumer: str,
    options: GroupOptions = INGEST_OPTIONS,
    metrics: Metrics = NO_METRICS,
    owners: OwnerCheck | None = None,
) -> list[Claimer]:
    """Subscribe ingest's consumer group to every publisher's ingress stream; return the
    claimers to run."""
    claimers = []
    for agency in principals:
        if agency.role is not Role.PUBLISHER:
            continue

        async def handle(entries: Sequence[Entry], agency: Principal = agency) -> None:
            await forward(entries, agency, screener, publisher, redis, metrics, owners)

        claimers.append(
            subscribe_group(
                broker,
                redis,
                stream=streams.ingress_stream(agency.name),
                group=streams.INGEST_GROUP,
                consumer=consumer,
                handler=handle,
                options=options,
                metrics=metrics,
            )
        )
    return claimers


class IngestService:
    """Ingest's part of a process: the screener (also the HTTP API's), the ingress readers."""

    def __init__(self, wiring: Wiring) -> None:
        self._wiring = wiring
        self.screener = Screener(
            wiring.topology, registry=Registry.of_principals(wiring.config.principals)
        )
        wiring.stack.callback(self.screener.close)
        self.alert_register = AlertRegister(wiring.redis, dedupe_window=wiring.dedupe_window)
        """Which unit raised each alert, for the handlers."""
        self.owners = AlertRegister(wiring.api_redis, dedupe_window=wiring.dedupe_window)
        """The same register on the API's client: ingest refuses another unit's change."""
        self.publishers = [p for p in wiring.config.principals if p.role is Role.PUBLISHER]
        self.quotas = Quotas(wiring.api_redis)
        """Each publisher's rate limit on the API (in Redis: shared by every API process)."""
        settings = wiring.settings
        marks = WaterMarks(
            settings.backlog_high, settings.backlog_low, settings.memory_high, settings.memory_low
        )
        self.backpressure = BackPressure(wiring.api_redis, marks)
        """Whether the API takes new events now (503 while the pipeline is behind)."""

    @property
    def trimmed(self) -> list[str]:
        """Every publisher's ingress stream."""
        return [streams.ingress_stream(p.name) for p in self.publishers]

    def subscribe(self, broker: RedisBroker) -> list[Background]:
        """A reader and a claimer per publisher's ingress stream."""
        w = self._wiring
        claimers = register_ingest(
            broker,
            w.redis,
            self.publishers,
            self.screener,
            w.publisher,
            consumer_name("ingest"),
            w.group_options(INGEST_OPTIONS),
            w.metrics,
            self.alert_register,
        )
        return list(claimers)

    async def start(self) -> None:
        """Ingest has no loop of its own."""

    async def checks(self) -> dict[str, bool]:
        """``intake``: not refusing events for back-pressure (the process's checks cover the
        server and the subscribers)."""
        try:
            return await self.backpressure.checks()
        except (OSError, RedisError):  # the server is away: the "redis" check says so
            return {}
