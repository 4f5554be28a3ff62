"""``GET /metrics``: one process's counters and, read at scrape time, the streams' backlog.

Each :class:`~services.bootstrap.Runtime` builds its own :class:`PrometheusMetrics`
(its own ``CollectorRegistry``, never the library's global one), so runtimes sharing
a Python process (the tests) count apart. The services count through the
:class:`~services.core.metrics.Metrics` port; the figures that live in Redis (consumer
groups' pending and lag, stream lengths, the dead letters) and the readiness checks
are read per scrape, in one pipelined round trip, under a deadline: a scrape
answers even while Redis does not (``liaison_redis_scrape_ok`` 0, those figures absent).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field

from prometheus_client import (
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.asyncio import Redis

from services.core import streams
from services.core.metrics import COUNTERS, CounterSpec
from services.core.stream_figures import StreamFigures, read_streams

__all__ = ["CONTENT_TYPE", "PrometheusMetrics"]

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The text exposition format every Prometheus reads (our names need no UTF-8 escaping)."""

REDIS_TIMEOUT = 2.0
"""Seconds a scrape waits for the streams' figures before answering without them."""
READY_TIMEOUT = 3.0
"""Seconds a scrape waits for the readiness checks (the database's has its own 2 s)."""

Readiness = Callable[[], Awaitable[dict[str, bool]]]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the last scrape read: the streams' figures (``None``: Redis did not answer)."""

    figures: StreamFigures | None = None
    ready: dict[str, bool] = field(default_factory=dict)


class _ScrapedCollector(Collector):
    """Exposes the snapshot the scrape just read (gauges whose label sets come and go)."""

    def __init__(self) -> None:
        self.snapshot = Snapshot()

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot
        ready = GaugeMetricFamily(
            "liaison_ready", "Readiness checks of this process: 1 holds, 0 fails.", labels=["check"]
        )
        for check, ok in sorted(snap.ready.items()):
            ready.add_metric([check], 1.0 if ok else 0.0)
        yield ready
        yield GaugeMetricFamily(
            "liaison_redis_scrape_ok",
            "1 if this scrape read the stream figures from Redis in time; 0 if not (then absent).",
            value=0.0 if snap.figures is None else 1.0,
        )
        if snap.figures is not None:
            yield from _stream_families(snap.figures)


def _stream_families(figures: StreamFigures) -> Iterator[Metric]:
    length = GaugeMetricFamily(
        "liaison_stream_length", "Entries in each consumed stream (XLEN).", labels=["stream"]
    )
    for stream, n in sorted(figures.lengths.items()):
        length.add_metric([stream], n)
    labels = ["stream", "group"]
    pending = GaugeMetricFamily(
        "liaison_group_pending",
        "Entries delivered to the consumer group and not yet acknowledged (XINFO GROUPS pending).",
        labels=labels,
    )
    lag = GaugeMetricFamily(
        "liaison_group_lag",
        "Entries in the stream not yet delivered to the consumer group (XINFO GROUPS lag; "
        "absent when the server cannot tell).",
        labels=labels,
    )
    for g in figures.groups:
        pending.add_metric([g.stream, g.group], g.pending)
        if g.lag is not None:
            lag.add_metric([g.stream, g.group], g.lag)
    yield from (length, pending, lag)
    yield GaugeMetricFamily(
        "liaison_dead_letters",
        f"Entries on the dead-letter stream {streams.DEAD_LETTERS} (see liaison dlq list).",
        value=figures.dead_letters,
    )


class _Counters(Collector):
    """The services' counters: plain numbers, added to on the event loop (no locks, no
    ``_created`` series), rendered as counters at scrape time."""

    def __init__(self) -> None:
        self.values: dict[CounterSpec, dict[tuple[str, ...], float]] = {
            spec: dict.fromkeys(spec.initial if spec.labels else [()], 0.0) for spec in COUNTERS
        }

    def collect(self) -> Iterator[Metric]:
        for spec, values in self.values.items():
            family = CounterMetricFamily(spec.name, spec.help, labels=spec.labels)
            for labels, value in values.items():
                family.add_metric(labels, value)
            yield family


class PrometheusMetrics:
    """A process's registry: the services' counters, process figures, and the scraped gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._counters = _Counters()
        self.registry.register(self._counters)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self._scraped = _ScrapedCollector()
        self.registry.register(self._scraped)
        self._redis: Redis | None = None
        self._ingress: tuple[str, ...] = ()
        self._ready: Readiness | None = None

    def inc(self, counter: CounterSpec, amount: float = 1, *labels: str) -> None:
        """:meth:`services.core.metrics.Metrics.inc`."""
        if len(labels) != len(counter.labels):
            raise ValueError(f"{counter.name} takes labels {counter.labels}, not {labels}")
        values = self._counters.values[counter]
        values[labels] = values.get(labels, 0.0) + amount

    def watch(self, redis: Redis, ready: Readiness, ingress: Sequence[str] = ()) -> None:
        """Where scrapes read the streams' figures (with these ingress streams) and the
        readiness checks."""
        self._redis, self._ready, self._ingress = redis, ready, tuple(ingress)

    async def scrape(self) -> bytes:
        """Read what lives outside the process, then render everything (:data:`CONTENT_TYPE`)."""
        figures, ready = await asyncio.gather(self._figures(), self._readiness())
        self._scraped.snapshot = Snapshot(figures, ready)
        return generate_latest(self.registry)

    async def _figures(self) -> StreamFigures | None:
        if self._redis is None:
            return None
        try:
            async with asyncio.timeout(REDIS_TIMEOUT):
                return await read_streams(self._redis, self._ingress)
        except Exception as exc:  # the scrape still answers; the gauge says what is missing
            log.warning("metrics: stream figures unavailable: %s", exc or type(exc).__name__)
            return None

    async def _readiness(self) -> dict[str, bool]:
        if self._ready is None:
            return {}
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                return await self._ready()
        except TimeoutError:  # a check hangs: every check known so far counts as failing
            return dict.fromkeys(self._scraped.snapshot.ready or {"redis": False}, False)
