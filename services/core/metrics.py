"""The counters services keep, as plain names: no metrics library below the bootstrap.

Handlers count through a :class:`Metrics` passed down from the bootstrap
(:class:`~services.core.prometheus.PrometheusMetrics` there); :data:`NO_METRICS`
is the default, so unit tests and other callers need not care. Count once
per batch (``inc(SPEC, len(batch))``), not per event: hot paths stay hot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class CounterSpec:
    """One counter: its name (exposed with ``_total``), HELP text and label names."""

    name: str
    help: str
    labels: tuple[str, ...] = ()
    initial: tuple[tuple[str, ...], ...] = ()
    """Label values exposed at 0 from the start, so that ``rate()`` sees the first increment."""


EVENTS_ACCEPTED = CounterSpec(
    "liaison_events_accepted",
    "Events published to their canonical stream by ingest, by way in (http: POST /v1/events; "
    "ingress: the Redis ingress stream).",
    ("via",),
    (("http",), ("ingress",)),
)
EVENTS_DUPLICATE = CounterSpec(
    "liaison_events_duplicate",
    "Events ingest received again (same source and id) and did not publish twice, by way in.",
    ("via",),
    (("http",), ("ingress",)),
)
PUBLISHER_EVENTS = CounterSpec(
    "liaison_publisher_events",
    "Events of POST /v1/events per publisher, by outcome: accepted (published), duplicate, "
    "limited (refused with 429: over the publisher's rate limit), overloaded (refused with 503: "
    "the pipeline is behind, back-pressure).",
    ("publisher", "outcome"),
)
LEDGER_APPENDED = CounterSpec(
    "liaison_ledger_appended", "Entries appended to the ledger's hash chain by this process."
)
LEDGER_DUPLICATES = CounterSpec(
    "liaison_ledger_duplicates",
    "Events the ledger had already recorded (a redelivery or a re-publish), ignored.",
)
DELIVERIES = CounterSpec(
    "liaison_notifier_deliveries",
    "Alert deliveries written to units' inboxes by the notifier, one per alert and recipient "
    "(an alert handled again after a crash counts again; the inbox keeps one).",
)
ESCALATIONS = CounterSpec(
    "liaison_notifier_escalations",
    "Deliveries escalated because nobody acknowledged them by their deadline.",
)
WEBHOOK_OUTCOMES = CounterSpec(
    "liaison_webhook_outcomes",
    "Webhook jobs by outcome: delivered (2xx), retrying (an attempt failed, another is "
    "scheduled), failed (given up on, recorded as alert.webhook_failed).",
    ("outcome",),
    (("delivered",), ("retrying",), ("failed",)),
)
REDELIVERIES = CounterSpec(
    "liaison_claimer_redeliveries",
    "Pending entries a claimer took over and handed to the handler again (a crashed consumer's, "
    "or a batch whose handler failed).",
    ("stream", "group"),
)
DEAD_LETTERED = CounterSpec(
    "liaison_claimer_dead_lettered",
    "Entries a claimer gave up on after the retry cap and moved to the dead-letter stream.",
    ("stream", "group"),
)

COUNTERS = (
    EVENTS_ACCEPTED,
    EVENTS_DUPLICATE,
    PUBLISHER_EVENTS,
    LEDGER_APPENDED,
    LEDGER_DUPLICATES,
    DELIVERIES,
    ESCALATIONS,
    WEBHOOK_OUTCOMES,
    REDELIVERIES,
    DEAD_LETTERED,
)
"""Every counter a process exposes."""


class Metrics(Protocol):
    """Where services count what they did."""

    def inc(self, counter: CounterSpec, amount: float = 1, *labels: str) -> None:
        """Add ``amount`` (0 declares the label values) to ``counter`` with ``labels``'
        values, in the order of ``counter.labels``."""
        ...


class NoMetrics:
    """Counts nothing: the default where no bootstrap wired a registry."""

    def inc(self, counter: CounterSpec, amount: float = 1, *labels: str) -> None:
        """Nothing."""


NO_METRICS: Metrics = NoMetrics()
