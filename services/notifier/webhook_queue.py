"""Webhook jobs: what is queued for each (delivery, endpoint), and the queue itself.

:meth:`WebhookQueue.enqueue` appends one **job** per (delivery, endpoint) to
the stream :data:`STREAM`, atomically with a set-if-absent marker (one Lua
script), so the notifier re-running a fan-out after a crash queues nothing
twice. The job holds the exact body bytes, so every attempt — on any worker,
after any restart — sends and signs the same bytes. Secrets stay in the
configuration, and so do the endpoints' URLs, which may carry credentials
(``user:pass@``, ``?api_key=``): a job names its endpoint
(:attr:`~services.core.config.Webhook.endpoint`), and the worker
(:mod:`services.notifier.webhooks`) looks the URL and secret up when it sends.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError
from redis.typing import EncodableT

from schemas.alerts import AlertRef
from services.core import streams
from services.core.config import Webhook, redact_url

__all__ = ["WebhookJob", "WebhookQueue", "endpoint_digest", "redact_url", "webhook_id"]

STREAM = streams.WEBHOOKS
"""Webhook jobs, one per (delivery, endpoint); deleted once finished."""

GROUP = streams.WEBHOOKS_GROUP
"""The consumer group of the webhook workers on :data:`STREAM`."""

PROGRESS = streams.WEBHOOKS_PROGRESS
"""Hash ``<entry id>:n`` → attempts made, ``<entry id>:next`` → next attempt (epoch s)."""

MARKER_PREFIX = streams.WEBHOOKS_MARKER_PREFIX
"""``…<webhook id>:<endpoint digest>`` → job entry id: set-if-absent guard of :meth:`WebhookQueue.enqueue`."""

MARKER_TTL_S = 7 * 24 * 3600
"""How long a re-run fan-out is recognised (it re-runs within minutes, after a crash)."""

CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
USER_AGENT = "liaison-exchange-webhooks/1"

# KEYS[1] = marker, KEYS[2] = stream; ARGV[1] = marker TTL (s); ARGV[2..] = field, value, …
_ENQUEUE_LUA = """
if not redis.call('SET', KEYS[1], '', 'NX', 'EX', ARGV[1]) then
  return false
end
local id = redis.call('XADD', KEYS[2], '*', unpack(ARGV, 2))
redis.call('SET', KEYS[1], id, 'EX', ARGV[1])
return id
"""


_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def webhook_id(source: str, event_id: str, unit: str) -> str:
    """The ``webhook-id`` of an event's delivery to a unit: deterministic, ``.``-free.

    Readable (``msg_<source unit>_<event id>_<unit>`` with unsafe characters
    replaced) and made unique by a digest of the exact triple, so two ids that
    sanitise alike still differ, and two units' events of one id never share
    one. For ``alert.raised`` the event id is the alert id.
    """
    digest = hashlib.sha256(f"{source}\n{event_id}\n{unit}".encode()).hexdigest()[:16]
    readable = _UNSAFE.sub("-", f"{source.rsplit('/', 1)[-1]}_{event_id}_{unit}")[:120]
    return f"msg_{readable}_{digest}"


def endpoint_digest(endpoint: str) -> str:
    """A short stable token of an endpoint's name, for keys and event ids."""
    return hashlib.sha256(endpoint.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class WebhookJob:
    """One delivery to one endpoint, as queued."""

    msg_id: str
    """The ``webhook-id``: the same on every attempt."""
    unit: str
    alert_id: str
    alert_source: str
    """The unit that raised the alert (with ``alert_id`` it names the alert)."""
    event_id: str
    endpoint: str
    """The endpoint's name (:attr:`~services.core.config.Webhook.endpoint`), never its URL."""
    body: bytes
    """The exact bytes POSTed and signed: the recipient's view of the CloudEvent."""
    enqueued_at: float
    """Epoch seconds; the retry window (:attr:`RetryPolicy.max_elapsed`) counts from here."""
    legacy_url: str | None = None
    """A job queued by an earlier version carries its endpoint's URL instead of its name."""

    def fields(self) -> dict[str, EncodableT]:
        """The stream entry's fields."""
        return {
            "msg_id": self.msg_id,
            "unit": self.unit,
            "alert_id": self.alert_id,
            "alert_source": self.alert_source,
            "event_id": self.event_id,
            "endpoint": self.endpoint,
            "body": self.body,
            "enqueued_at": repr(self.enqueued_at),
        }

    @classmethod
    def from_fields(cls, fields: Mapping[bytes, bytes]) -> WebhookJob:
        """Parse a stream entry (KeyError or ValueError if it is not a job)."""

        def text(name: str) -> str:
            return fields[name.encode()].decode()

        legacy_url = None if b"endpoint" in fields else text("url")
        if b"alert_source" in fields:
            origin = text("alert_source")
        else:  # queued before jobs named it: the body is the alert itself
            origin = str(json.loads(fields[b"body"])["source"]).removeprefix("/units/")
        return cls(
            msg_id=text("msg_id"),
            unit=text("unit"),
            alert_id=text("alert_id"),
            alert_source=origin,
            event_id=text("event_id"),
            endpoint=redact_url(legacy_url) if legacy_url else text("endpoint"),
            body=fields[b"body"],
            enqueued_at=float(text("enqueued_at")),
            legacy_url=legacy_url,
        )


def encode_body(event: Mapping[str, Any]) -> bytes:
    """The wire form of an event: compact JSON, sorted keys, UTF-8."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


async def ensure_webhook_group(redis: Redis) -> None:
    """Create :data:`GROUP` on :data:`STREAM` at id ``0`` (MKSTREAM); keep an existing one."""
    try:
        await redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


class WebhookQueue:
    """Queues a unit's deliveries for its configured endpoints."""

    def __init__(
        self,
        redis: Redis,
        endpoints: Sequence[Webhook],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._clock = clock
        self._by_unit: dict[str, list[Webhook]] = {}
        for endpoint in endpoints:
            self._by_unit.setdefault(endpoint.unit, []).append(endpoint)
        self._script = redis.register_script(_ENQUEUE_LUA)

    def endpoints(self, unit: str) -> list[Webhook]:
        """The unit's endpoints (none: nothing is queued for it)."""
        return list(self._by_unit.get(unit, ()))

    async def enqueue(self, unit: str, alert: AlertRef, event: Mapping[str, Any]) -> int:
        """Queue ``event`` (the unit's view, as stored in its inbox) for each of its endpoints.

        Idempotent per (event source, event id, unit, endpoint); returns how many jobs were new.
        """
        return await self.enqueue_many([(unit, alert, event)])

    async def enqueue_many(
        self, deliveries: Sequence[tuple[str, AlertRef, Mapping[str, Any]]]
    ) -> int:
        """:meth:`enqueue` for many (unit, alert, event) at once: one round trip in all."""
        calls: list[tuple[str, list[EncodableT]]] = []
        bodies: dict[int, bytes] = {}  # recipients sharing a view share its object: encode once
        for unit, alert, event in deliveries:
            endpoints = self._by_unit.get(unit)
            if not endpoints:
                continue
            event_id = str(event["id"])
            msg_id = webhook_id(str(event["source"]), event_id, unit)
            body = bodies.get(id(event))
            if body is None:
                body = bodies[id(event)] = encode_body(event)
            now = self._clock()
            for endpoint in endpoints:
                name = endpoint.endpoint
                job = WebhookJob(msg_id, unit, alert.id, alert.origin, event_id, name, body, now)
                args: list[EncodableT] = [MARKER_TTL_S]
                for field, value in job.fields().items():
                    args += [field, value]
                calls.append((f"{MARKER_PREFIX}{msg_id}:{endpoint_digest(name)}", args))
        if not calls:
            return 0
        try:
            replies = await self._run(calls)
        except NoScriptError:  # a new or flushed server: load it, then the same again
            await self._redis.script_load(_ENQUEUE_LUA)
            replies = await self._run(calls)
        return sum(1 for reply in replies if reply)

    async def _run(self, calls: Sequence[tuple[str, list[EncodableT]]]) -> list[Any]:
        """EVALSHA in one pipeline (idempotent: a repeat queues nothing twice)."""
        pipe = self._redis.pipeline(transaction=False)
        for marker, args in calls:
            pipe.evalsha(self._script.sha, 2, marker, STREAM, *args)
        return await pipe.execute()
