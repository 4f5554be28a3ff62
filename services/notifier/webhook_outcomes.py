"""What happens when a webhook job ends: the inbox shows it, and a failure is recorded in the ledger."""

from __future__ import annotations

import json

from redis.asyncio import Redis

from schemas.events import CloudEvent
from schemas.receipts import AlertWebhookFailed
from schemas.vocabulary import EventType
from services.bus import Publisher
from services.notifier.handlers import NOTIFIER_SOURCE
from services.notifier.webhooks import (
    Outcome,
    RedisWebhookOutcomes,
    WebhookJob,
    failure_event_data,
    failure_event_id,
)


class RecordedWebhookOutcomes(RedisWebhookOutcomes):
    """Outcomes beside the inbox entry; an exhausted job also becomes ``alert.webhook_failed``."""

    def __init__(self, redis: Redis, publisher: Publisher) -> None:
        super().__init__(redis)
        self._publisher = publisher

    async def exhausted(self, job: WebhookJob, outcome: Outcome) -> None:
        await super().exhausted(job, outcome)
        view = json.loads(job.body)  # the recipient's view: carries the alert's handling codes
        event = CloudEvent(
            specversion="1.0",
            id=failure_event_id(job),
            source=NOTIFIER_SOURCE,
            type=EventType.ALERT_WEBHOOK_FAILED,
            time=outcome.at,
            subject=job.alert_id,
            tlp=view.get("tlp", "amber"),
            releasableto=view.get("releasableto"),
            piireleasableto=view.get("piireleasableto"),
            data=AlertWebhookFailed.model_validate(failure_event_data(job, outcome)),
        )
        await self._publisher.publish([event])
