"""The metrics port: a no-op by default, and one registry per runtime, never the global one."""

from __future__ import annotations

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.core.metrics import (
    COUNTERS,
    LEDGER_APPENDED,
    NO_METRICS,
    REDELIVERIES,
    WEBHOOK_OUTCOMES,
)
from services.core.prometheus import PrometheusMetrics


async def _values(metrics: PrometheusMetrics) -> dict[tuple[str, tuple[str, ...]], float]:
    """Each sample by name and its label values, in the order of the labels' names."""
    text = (await metrics.scrape()).decode()
    return {
        (s.name, tuple(v for _, v in sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_each_registry_counts_apart() -> None:
    first, second = PrometheusMetrics(), PrometheusMetrics()
    first.inc(LEDGER_APPENDED, 500)
    first.inc(LEDGER_APPENDED, 3)
    first.inc(REDELIVERIES, 2, "{liaison}:stream:alerts", "notifier")
    assert (await _values(first))[("liaison_ledger_appended_total", ())] == 503
    assert (await _values(first))[
        ("liaison_claimer_redeliveries_total", ("notifier", "{liaison}:stream:alerts"))
    ] == 2
    assert (await _values(second))[("liaison_ledger_appended_total", ())] == 0


async def test_every_counter_is_documented_and_nothing_lands_in_the_global_registry() -> None:
    values = await _values(PrometheusMetrics())
    for spec in COUNTERS:
        assert spec.name.startswith("liaison_")
        assert spec.help
        if not spec.labels:
            assert values[(f"{spec.name}_total", ())] == 0
    assert values[("liaison_webhook_outcomes_total", ("failed",))] == 0
    assert values[("liaison_redis_scrape_ok", ())] == 0  # nothing to read from yet
    global_names = {m.name for m in prometheus_client.REGISTRY.collect()}
    assert not any(name.startswith("liaison_") for name in global_names)


def test_labels_must_match_the_counter() -> None:
    with pytest.raises(ValueError, match="outcome"):
        PrometheusMetrics().inc(WEBHOOK_OUTCOMES, 1)


def test_the_default_counts_nothing() -> None:
    NO_METRICS.inc(LEDGER_APPENDED, 1)
    NO_METRICS.inc(WEBHOOK_OUTCOMES, 1, "delivered")
