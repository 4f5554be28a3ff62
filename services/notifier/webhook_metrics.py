"""Webhook outcomes counted: a :class:`WebhookOutcomes` that counts, then passes each on."""

from __future__ import annotations

from services.core.metrics import WEBHOOK_OUTCOMES, Metrics
from services.notifier.webhook_outcomes import Outcome, WebhookOutcomes
from services.notifier.webhook_queue import WebhookJob


class CountedWebhookOutcomes:
    """Counts each outcome by state (``liaison_webhook_outcomes_total``) around ``inner``."""

    def __init__(self, inner: WebhookOutcomes, metrics: Metrics) -> None:
        self._inner, self._metrics = inner, metrics

    async def retrying(self, job: WebhookJob, outcome: Outcome) -> None:
        """An attempt failed; another one is scheduled."""
        await self._inner.retrying(job, outcome)
        self._metrics.inc(WEBHOOK_OUTCOMES, 1, "retrying")

    async def delivered(self, job: WebhookJob, outcome: Outcome) -> None:
        """The endpoint answered 2xx."""
        await self._inner.delivered(job, outcome)
        self._metrics.inc(WEBHOOK_OUTCOMES, 1, "delivered")

    async def exhausted(self, job: WebhookJob, outcome: Outcome) -> None:
        """Given up on."""
        await self._inner.exhausted(job, outcome)
        self._metrics.inc(WEBHOOK_OUTCOMES, 1, "failed")
