"""What happens when a webhook job ends: the inbox shows it, and a failure is recorded in the ledger.

:class:`WebhookOutcomes` is the notifier's port; :class:`RedisWebhookOutcomes`
keeps each outcome beside the unit's inbox entry, and
:class:`RecordedWebhookOutcomes` also publishes ``alert.webhook_failed`` for the
ledger when a job is given up on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from redis.asyncio import Redis

from schemas.alerts import AlertRef
from schemas.events import CloudEvent
from schemas.receipts import AlertWebhookFailed
from schemas.vocabulary import EventType
from services.core import streams
from services.core.bus import Publisher
from services.notifier.handlers import NOTIFIER_SOURCE
from services.notifier.webhook_queue import WebhookJob, endpoint_digest, redact_url

# KEYS[1] = outcome hash; ARGV = field, record JSON, rank of its state.
# A later record never replaces a more final one (delivered > failed > retrying).
_RECORD_LUA = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current then
  local ok, doc = pcall(cjson.decode, current)
  local rank = {retrying = 0, failed = 1, delivered = 2}
  if ok and rank[doc['state']] and rank[doc['state']] > tonumber(ARGV[3]) then
    return 0
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


State = Literal["retrying", "delivered", "failed"]
_RANK: dict[State, int] = {"retrying": 0, "failed": 1, "delivered": 2}


@dataclass(frozen=True, slots=True)
class Outcome:
    """Where a job stands after an attempt."""

    state: State
    attempts: int
    last_status: int | None
    last_error: str | None
    at: datetime
    reason: str | None = None
    """Why it was given up on (``failed`` only)."""
    next_attempt_at: datetime | None = None
    """When it will be tried again (``retrying`` only)."""

    def record(self, job: WebhookJob) -> dict[str, Any]:
        """The JSON document kept beside the inbox entry."""
        return {
            "webhook_id": job.msg_id,
            "event_id": job.event_id,
            "endpoint": job.endpoint,
            "state": self.state,
            "attempts": self.attempts,
            "last_status": self.last_status,
            "last_error": self.last_error,
            "reason": self.reason,
            "next_attempt_at": self.next_attempt_at.isoformat() if self.next_attempt_at else None,
            "at": self.at.isoformat(),
        }


class WebhookOutcomes(Protocol):
    """The notifier's side: told how each job went."""

    async def retrying(self, job: WebhookJob, outcome: Outcome) -> None:
        """An attempt failed; another one is scheduled."""
        ...

    async def delivered(self, job: WebhookJob, outcome: Outcome) -> None:
        """The endpoint answered 2xx."""
        ...

    async def exhausted(self, job: WebhookJob, outcome: Outcome) -> None:
        """Given up on (retries used up, a permanent refusal, or the endpoint is gone)."""
        ...


def outcomes_key(unit: str, alert: AlertRef) -> str:
    """Hash ``<webhook id> <endpoint>`` → outcome JSON of one inbox entry's webhook deliveries."""
    return f"{streams.inbox_key(unit)}:webhooks:{streams.alert_key(alert)}"


class RedisWebhookOutcomes:
    """:class:`WebhookOutcomes` kept beside the unit's inbox entry (:func:`webhook_outcomes`)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._script = redis.register_script(_RECORD_LUA)

    async def _record(self, job: WebhookJob, outcome: Outcome) -> None:
        doc = json.dumps(outcome.record(job))
        field = f"{job.msg_id} {job.endpoint}"
        key = outcomes_key(job.unit, AlertRef(job.alert_source, job.alert_id))
        await self._script(keys=[key], args=[field, doc, _RANK[outcome.state]])

    async def retrying(self, job: WebhookJob, outcome: Outcome) -> None:
        await self._record(job, outcome)

    async def delivered(self, job: WebhookJob, outcome: Outcome) -> None:
        await self._record(job, outcome)

    async def exhausted(self, job: WebhookJob, outcome: Outcome) -> None:
        await self._record(job, outcome)


async def webhook_outcomes(redis: Redis, unit: str, alert: AlertRef) -> list[dict[str, Any]]:
    """How an inbox entry's webhook deliveries went, one document per endpoint and event."""
    return outcome_documents(await redis.hvals(outcomes_key(unit, alert)))


def outcome_documents(raw: Iterable[bytes | str]) -> list[dict[str, Any]]:
    """The values of an :func:`outcomes_key` hash as shown, by endpoint and event."""
    docs: list[dict[str, Any]] = [_named(json.loads(r)) for r in raw]
    return sorted(docs, key=lambda d: (d["endpoint"], d["event_id"]))


def _named(doc: dict[str, Any]) -> dict[str, Any]:
    """An outcome kept by an earlier version names its endpoint by URL: show it redacted."""
    if "endpoint" not in doc:
        doc["endpoint"] = redact_url(str(doc.pop("url", "")))
    return doc


def failure_event_id(job: WebhookJob) -> str:
    """A deterministic CloudEvent id for the ledger's record of an exhausted job."""
    digest = endpoint_digest(job.endpoint)
    return f"webhook_failed/{job.alert_source}/{job.event_id}/{job.unit}/{digest}"


def failure_event_data(job: WebhookJob, outcome: Outcome) -> dict[str, Any]:
    """What the ledger should record of an exhausted job (the endpoint's name, no secrets)."""
    return {
        "alert_id": job.alert_id,
        "alert_source": job.alert_source,
        "event_id": job.event_id,
        "unit": job.unit,
        "webhook_id": job.msg_id,
        "endpoint": job.endpoint,
        "attempts": outcome.attempts,
        "last_status": outcome.last_status,
        "last_error": outcome.last_error,
        "reason": outcome.reason,
        "queued_at": datetime.fromtimestamp(job.enqueued_at, UTC).isoformat(),
        "failed_at": outcome.at.isoformat(),
    }


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
