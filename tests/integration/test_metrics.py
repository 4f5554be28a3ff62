"""``GET /metrics`` as a duty engineer scrapes it: counters of what happened, the backlog now."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence

import httpx
from faststream.redis import RedisBroker
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from services.bootstrap import Runtime
from services.core import bus, streams
from services.core.bus import Entry
from services.core.config import Role
from services.core.prometheus import PrometheusMetrics
from services.core.redis_client import connect
from services.core.streaming import GroupOptions, subscribe_group
from services.entrypoints.http import create_health_app
from tests import factories
from tests.integration.conftest import auth, eventually, principals_config

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """One sample's value, ``None`` if absent."""
    return samples.get((name, frozenset(labels.items())))


async def scrape(api: httpx.AsyncClient) -> Samples:
    """What the metrics token reads (the API's address serves the figures to nobody else)."""
    response = await api.get("/metrics", headers=auth("metrics"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


def settled(samples: Samples) -> bool:
    """Every consumer group has read and acknowledged everything."""
    groups = [
        (name, labels)
        for name, labels in samples
        if name in ("liaison_group_pending", "liaison_group_lag")
    ]
    publishers = [p.name for p in principals_config().principals if p.role is Role.PUBLISHER]
    expected = streams.groups(publishers).values()
    return len(groups) == 2 * sum(len(g) for g in expected) and all(
        samples[key] == 0 for key in groups
    )


async def test_a_scrape_counts_what_the_services_did(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    seizure, alert = factories.seizure(), factories.alert()
    assert (await api.post("/v1/events", json=seizure, headers=auth("mia"))).status_code == 202
    assert (await api.post("/v1/events", json=alert, headers=auth("customs"))).status_code == 202
    again = await api.post("/v1/events", json=seizure, headers=auth("mia"))
    assert again.json() == {"accepted": [], "duplicates": [seizure["id"]]}
    # docs/routing.md's worked example: the Oybek alert reaches four units, each an alert.delivered
    expected_ledger = 2 + 4
    samples: Samples = {}

    async def processed() -> bool:
        nonlocal samples
        samples = await scrape(api)
        return value(samples, "liaison_ledger_appended_total") == expected_ledger and settled(
            samples
        )

    await eventually(processed)
    assert value(samples, "liaison_events_accepted_total", via="http") == 2
    assert value(samples, "liaison_events_duplicate_total", via="http") == 1
    assert value(samples, "liaison_events_accepted_total", via="ingress") == 0
    assert value(samples, "liaison_notifier_deliveries_total") == 4
    assert value(samples, "liaison_ledger_duplicates_total") == 0
    assert value(samples, "liaison_notifier_escalations_total") == 0
    assert value(samples, "liaison_webhook_outcomes_total", outcome="failed") == 0
    assert value(samples, "liaison_stream_length", stream=streams.SEIZURES) == 1
    assert value(samples, "liaison_stream_length", stream=streams.ALERTS) == 1
    assert value(samples, "liaison_stream_length", stream=streams.RECEIPTS) == 4
    assert value(samples, "liaison_group_lag", stream=streams.ALERTS, group="notifier") == 0
    assert value(samples, "liaison_group_pending", stream=streams.ALERTS, group="ledger") == 0
    assert value(samples, "liaison_dead_letters") == 0
    assert value(samples, "liaison_redis_scrape_ok") == 1
    for check in ("redis", "subscribers", "database", "webhooks"):
        assert value(samples, "liaison_ready", check=check) == 1
    redeliveries = value(
        samples, "liaison_claimer_redeliveries_total", stream=streams.ALERTS, group="notifier"
    )
    assert redeliveries == 0  # declared at 0, so rate() sees the first one


async def test_dead_letters_and_ingress_are_counted(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    mia = streams.ingress_stream("uz-mia")
    await runtime.redis.xadd(mia, {streams.EVENT_FIELD: "{not json"})
    await runtime.redis.xadd(mia, {streams.EVENT_FIELD: json.dumps(factories.seizure())})
    samples: Samples = {}

    async def dead_lettered() -> bool:
        nonlocal samples
        samples = await scrape(api)
        return value(samples, "liaison_dead_letters") == 1 and settled(samples)

    await eventually(dead_lettered)
    assert value(samples, "liaison_events_accepted_total", via="ingress") == 1
    assert value(samples, "liaison_stream_length", stream=mia) == 2


async def test_the_health_app_serves_metrics_too(runtime: Runtime) -> None:
    """``liaison serve ledger|notifier`` with LIAISON_HEALTH_ADDR: no API, still metrics."""
    app = create_health_app(runtime.readiness, runtime.metrics.scrape)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://liaison") as health:
        samples = await scrape(health)
    assert value(samples, "liaison_redis_scrape_ok") == 1
    assert value(samples, "liaison_ledger_appended_total") == 0


async def test_a_scrape_answers_while_redis_does_not() -> None:
    metrics = PrometheusMetrics()
    away = connect("redis://127.0.0.1:1", socket_connect_timeout=0.5)

    async def ready() -> dict[str, bool]:
        return {"redis": False}

    metrics.watch(away, ready)
    try:
        samples = parse((await metrics.scrape()).decode())
    finally:
        await away.aclose()
    assert value(samples, "liaison_redis_scrape_ok") == 0
    assert value(samples, "liaison_ready", check="redis") == 0
    assert not any(name == "liaison_group_pending" for name, _ in samples)


async def test_the_claimer_counts_redeliveries_and_dead_letters(
    redis_url: str, redis: Redis
) -> None:
    await bus.ensure_groups(redis)
    metrics = PrometheusMetrics()
    options = GroupOptions(max_records=10, polling_ms=20, claim_idle_ms=200, retry_cap=2)

    async def poisoned(entries: Sequence[Entry]) -> None:
        raise RuntimeError("cannot handle this")

    broker = RedisBroker(redis_url)
    claimer = subscribe_group(broker, redis, stream=streams.SEIZURES, group="ledger",
                              consumer="t", handler=poisoned, options=options,
                              metrics=metrics)  # fmt: skip
    await broker.start()
    task = asyncio.create_task(claimer.run())
    try:
        await redis.xadd(streams.SEIZURES, {streams.EVENT_FIELD: "poison"})

        async def dead() -> bool:
            return await redis.xlen(streams.DEAD_LETTERS) == 1

        await eventually(dead)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await broker.stop()
    samples = parse((await metrics.scrape()).decode())
    labels = {"stream": streams.SEIZURES, "group": "ledger"}
    assert value(samples, "liaison_claimer_dead_lettered_total", **labels) == 1
    # read once, then claimed until delivered more than retry_cap times
    assert value(samples, "liaison_claimer_redeliveries_total", **labels) == options.retry_cap - 1
