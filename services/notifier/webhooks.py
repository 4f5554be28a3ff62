"""Webhook delivery: each unit delivery POSTed to the unit's endpoints, signed, retried, recorded.

DESIGN §4 "Webhooks": a unit may have endpoints (``webhooks:`` in the
configuration file). Each delivery is POSTed as the recipient's view of the
CloudEvent (structured mode, ``application/cloudevents+json``), signed per
Standard Webhooks (:mod:`services.notifier.webhook_signing`), retried with
exponential backoff and full jitter (honouring ``Retry-After``), never
blocking other recipients; exhausted retries are recorded, not lost.

How it is built
---------------

* :meth:`WebhookQueue.enqueue` appends one **job** per (delivery, endpoint) to
  the stream :data:`STREAM`, atomically with a set-if-absent marker (one Lua
  script), so the notifier re-running a fan-out after a crash queues nothing
  twice. The job holds the exact body bytes, so every attempt — on any worker,
  after any restart — sends and signs the same bytes. Secrets stay in the
  configuration: the worker looks the endpoint up when it sends.
* :class:`WebhookWorker` reads the stream in the consumer group :data:`GROUP`
  (created at id ``0``) and runs **each job in its own task**. Requests are
  bounded globally (``max_requests``) and **per endpoint** (``per_endpoint``),
  and each has a total deadline, so a slow or dead endpoint can hold only its
  own share and never delays other recipients. A job is XACKed (and XDELed:
  this stream is a work queue, not a record) only when it has finished —
  delivered, or given up on.
* A job stays pending in the group for its whole retry schedule (minutes to
  hours), so the worker **heartbeats** the entries it owns (``XCLAIM …
  JUSTID`` after checking it still owns them, in one script) every
  ``claim_idle / 3``; any worker **reclaims** (``XAUTOCLAIM``) entries idle
  longer than ``claim_idle`` — a dead worker's — on start and every
  ``claim_idle / 2``. Attempts made and the next attempt's time live in
  :data:`PROGRESS`, so a reclaimed job continues its schedule instead of
  starting over. Delivery is at-least-once; receivers deduplicate on
  ``webhook-id``, which is stable across attempts, workers and restarts.

Why plain ``redis.asyncio`` and not FastStream: FastStream's batch subscriber
acknowledges the whole batch when its handler returns, and its claimer
redelivers an entry whenever it has been pending for ``min_idle_time``. A
webhook job must stay pending through a retry schedule far longer than any
claim idle time and be acknowledged on its own when it finishes, while other
jobs of the same read start, succeed and are acknowledged independently.
That needs per-entry XACK, ownership heartbeats and a concurrency bound per
endpoint, which is this small loop.

Outcomes go through :class:`WebhookOutcomes` (the notifier's port);
:class:`RedisWebhookOutcomes` keeps them beside the unit's inbox entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit, urlunsplit

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError
from redis.typing import EncodableT

from services import streams
from services.bus import dead_letter
from services.config import Webhook
from services.notifier.webhook_signing import signed_headers

log = logging.getLogger(__name__)

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

# KEYS[1] = stream; ARGV[1] = group, ARGV[2] = consumer, ARGV[3..] = entry ids.
# Refreshes the idle time of the entries this consumer still owns; returns the others.
_HEARTBEAT_LUA = """
local lost = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #p == 1 and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
  else
    lost[#lost + 1] = ARGV[i]
  end
end
return lost
"""

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

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def webhook_id(event_id: str, unit: str) -> str:
    """The ``webhook-id`` of an event's delivery to a unit: deterministic, ``.``-free.

    Readable (``msg_<event id>_<unit>`` with unsafe characters replaced) and
    made unique by a digest of the exact pair, so two ids that sanitise alike
    still differ. For ``alert.raised`` the event id is the alert id.
    """
    digest = hashlib.sha256(f"{event_id}\n{unit}".encode()).hexdigest()[:16]
    readable = _UNSAFE.sub("-", f"{event_id}_{unit}")[:120]
    return f"msg_{readable}_{digest}"


def endpoint_digest(url: str) -> str:
    """A short stable name of an endpoint (for keys and event ids; never the URL itself)."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def redact_url(url: str) -> str:
    """The URL without credentials, query or fragment — what may be written to the ledger."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


# --- jobs and the queue -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebhookJob:
    """One delivery to one endpoint, as queued."""

    msg_id: str
    """The ``webhook-id``: the same on every attempt."""
    unit: str
    alert_id: str
    event_id: str
    url: str
    body: bytes
    """The exact bytes POSTed and signed: the recipient's view of the CloudEvent."""
    enqueued_at: float
    """Epoch seconds; the retry window (:attr:`RetryPolicy.max_elapsed`) counts from here."""

    def fields(self) -> dict[str, EncodableT]:
        """The stream entry's fields."""
        return {
            "msg_id": self.msg_id,
            "unit": self.unit,
            "alert_id": self.alert_id,
            "event_id": self.event_id,
            "url": self.url,
            "body": self.body,
            "enqueued_at": repr(self.enqueued_at),
        }

    @classmethod
    def from_fields(cls, fields: Mapping[bytes, bytes]) -> WebhookJob:
        """Parse a stream entry (KeyError or ValueError if it is not a job)."""

        def text(name: str) -> str:
            return fields[name.encode()].decode()

        return cls(
            msg_id=text("msg_id"),
            unit=text("unit"),
            alert_id=text("alert_id"),
            event_id=text("event_id"),
            url=text("url"),
            body=fields[b"body"],
            enqueued_at=float(text("enqueued_at")),
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

    async def enqueue(self, unit: str, alert_id: str, event: Mapping[str, Any]) -> int:
        """Queue ``event`` (the unit's view, as stored in its inbox) for each of its endpoints.

        Idempotent per (event id, unit, endpoint); returns how many jobs were new.
        """
        endpoints = self._by_unit.get(unit)
        if not endpoints:
            return 0
        event_id = str(event["id"])
        msg_id = webhook_id(event_id, unit)
        body = encode_body(event)
        queued = 0
        for endpoint in endpoints:
            job = WebhookJob(msg_id, unit, alert_id, event_id, endpoint.url, body, self._clock())
            args: list[EncodableT] = [MARKER_TTL_S]
            for name, value in job.fields().items():
                args += [name, value]
            marker = f"{MARKER_PREFIX}{msg_id}:{endpoint_digest(endpoint.url)}"
            if await self._script(keys=[marker, STREAM], args=args):
                queued += 1
        return queued


# --- the retry policy -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When to try again and when to give up (seconds throughout)."""

    max_attempts: int = 10
    max_elapsed: float = 24 * 3600.0
    """Give up rather than schedule an attempt later than this after the job was queued."""
    base_delay: float = 5.0
    """The backoff ceiling after the first failure; it doubles after each further one."""
    max_delay: float = 2 * 3600.0
    retry_after_cap: float = 2 * 3600.0
    """The longest ``Retry-After`` honoured."""
    request_timeout: float = 15.0
    """Total time allowed for one request (Standard Webhooks recommends 15-30 s)."""
    connect_timeout: float = 5.0


def parse_retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds from ``now``: delta-seconds or an HTTP date; None if absent or bad."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def backoff_delay(
    policy: RetryPolicy,
    failures: int,
    retry_after: float | None = None,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait after ``failures`` failed attempts: full jitter, never before ``Retry-After``.

    The delay is uniform in ``[0, min(max_delay, base_delay · 2^(failures-1))]``;
    a ``Retry-After`` (capped at ``retry_after_cap``) is a lower bound.
    """
    ceiling = min(policy.max_delay, policy.base_delay * 2.0 ** min(max(failures - 1, 0), 62))
    delay = ceiling * rand()
    if retry_after is not None:
        delay = max(delay, min(retry_after, policy.retry_after_cap))
    return delay


def is_retryable_status(status: int) -> bool:
    """408, 429 and 5xx are worth another attempt; other failures are not."""
    return status in (408, 429) or 500 <= status <= 599


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one POST came to."""

    status: int | None
    """The HTTP status, or None when there was no answer."""
    error: str | None = None
    retry_after: float | None = None
    """Seconds the endpoint asked us to wait (``Retry-After``)."""
    retryable: bool = False

    @property
    def delivered(self) -> bool:
        """A 2xx answer."""
        return self.status is not None and 200 <= self.status <= 299


# --- outcomes ---------------------------------------------------------------------------------

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
            "url": job.url,
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


def outcomes_key(unit: str, alert_id: str) -> str:
    """Hash ``<webhook id> <url>`` → outcome JSON of one inbox entry's webhook deliveries."""
    return f"{streams.inbox_key(unit)}:webhooks:{alert_id}"


class RedisWebhookOutcomes:
    """:class:`WebhookOutcomes` kept beside the unit's inbox entry (:func:`webhook_outcomes`)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._script = redis.register_script(_RECORD_LUA)

    async def _record(self, job: WebhookJob, outcome: Outcome) -> None:
        doc = json.dumps(outcome.record(job))
        field = f"{job.msg_id} {job.url}"
        key = outcomes_key(job.unit, job.alert_id)
        await self._script(keys=[key], args=[field, doc, _RANK[outcome.state]])

    async def retrying(self, job: WebhookJob, outcome: Outcome) -> None:
        await self._record(job, outcome)

    async def delivered(self, job: WebhookJob, outcome: Outcome) -> None:
        await self._record(job, outcome)

    async def exhausted(self, job: WebhookJob, outcome: Outcome) -> None:
        await self._record(job, outcome)


async def webhook_outcomes(redis: Redis, unit: str, alert_id: str) -> list[dict[str, Any]]:
    """How an inbox entry's webhook deliveries went, one document per endpoint and event."""
    raw = await redis.hvals(outcomes_key(unit, alert_id))
    docs: list[dict[str, Any]] = [json.loads(r) for r in raw]
    return sorted(docs, key=lambda d: (d["url"], d["event_id"]))


def failure_event_id(job: WebhookJob) -> str:
    """A deterministic CloudEvent id for the ledger's record of an exhausted job."""
    return f"webhook_failed/{job.event_id}/{job.unit}/{endpoint_digest(job.url)}"


def failure_event_data(job: WebhookJob, outcome: Outcome) -> dict[str, Any]:
    """What the ledger should record of an exhausted job (no secrets, no URL credentials)."""
    return {
        "alert_id": job.alert_id,
        "event_id": job.event_id,
        "unit": job.unit,
        "webhook_id": job.msg_id,
        "endpoint": redact_url(job.url),
        "attempts": outcome.attempts,
        "last_status": outcome.last_status,
        "last_error": outcome.last_error,
        "reason": outcome.reason,
        "queued_at": datetime.fromtimestamp(job.enqueued_at, UTC).isoformat(),
        "failed_at": outcome.at.isoformat(),
    }


# --- the worker -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """Concurrency and ownership of one worker (seconds for times)."""

    max_jobs: int = 1000
    """Jobs held at once, sending or waiting for their next attempt."""
    max_requests: int = 64
    """Requests in flight at once, over all endpoints."""
    per_endpoint: int = 4
    """Requests in flight at once to one endpoint: a slow one holds no more than this."""
    claim_idle: float = 30.0
    """A job pending this long without a heartbeat is taken over (its worker died)."""
    block: float = 1.0
    """Longest wait for new jobs in one read."""


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _read_entries(reply: Any) -> list[tuple[str, Mapping[bytes, bytes] | None]]:
    """The entries of an XREADGROUP reply on one stream (RESP2 list or RESP3 map)."""
    if not reply:
        return []
    if isinstance(reply, dict):  # RESP3: {stream: [[entry, …]]}
        per_stream = [v[0] if v and isinstance(v[0], list) else v for v in reply.values()]
    else:  # RESP2: [[stream, [entry, …]]]
        per_stream = [s[1] for s in reply]
    return [(_text(e[0]), e[1]) for entries in per_stream for e in entries]


class WebhookWorker:
    """Delivers queued jobs until cancelled; run it as a task (:meth:`run`)."""

    def __init__(
        self,
        redis: Redis,
        endpoints: Sequence[Webhook],
        outcomes: WebhookOutcomes,
        consumer: str,
        *,
        policy: RetryPolicy = RetryPolicy(),
        options: WorkerOptions = WorkerOptions(),
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._redis = redis
        self._secrets = {(w.unit, w.url): w.secret for w in endpoints}
        self._outcomes = outcomes
        self.consumer = consumer
        self._policy = policy
        self._options = options
        self._own_client = client is None
        self._client = client
        self._clock = clock
        self._rand = rand
        self._jobs: dict[str, asyncio.Task[None]] = {}
        self._slot_freed = asyncio.Event()
        self._requests = asyncio.Semaphore(options.max_requests)
        self._endpoint_slots: dict[str, asyncio.Semaphore] = {}
        self._heartbeat_script = redis.register_script(_HEARTBEAT_LUA)
        self.running = False
        """True once the worker reads jobs (for readiness checks)."""

    @property
    def in_flight(self) -> int:
        """Jobs held now."""
        return len(self._jobs)

    def _new_client(self) -> httpx.AsyncClient:
        policy, options = self._policy, self._options
        return httpx.AsyncClient(
            timeout=httpx.Timeout(policy.request_timeout, connect=policy.connect_timeout),
            limits=httpx.Limits(
                max_connections=options.max_requests,
                max_keepalive_connections=options.max_requests,
            ),
            follow_redirects=False,  # a 3xx is a failure: the endpoint's URL needs updating
            headers={"user-agent": USER_AGENT},
        )

    async def run(self) -> None:
        """Consume jobs until cancelled; held jobs stay pending for the next worker."""
        await ensure_webhook_group(self._redis)
        async with contextlib.AsyncExitStack() as stack:
            if self._client is None:
                self._client = await stack.enter_async_context(self._new_client())
            heartbeat = asyncio.create_task(self._heartbeat(), name="webhooks:heartbeat")
            self.running = True
            try:
                await self._consume()
            finally:
                self.running = False
                tasks = [heartbeat, *self._jobs.values()]
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                self._jobs.clear()
                if self._own_client:
                    self._client = None

    async def _consume(self) -> None:
        loop = asyncio.get_running_loop()
        claim_every = self._options.claim_idle / 2
        next_claim = 0.0
        while True:
            free = self._options.max_jobs - len(self._jobs)
            if free <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            try:
                if loop.time() >= next_claim:
                    await self._claim(free)
                    next_claim = loop.time() + claim_every
                    continue
                block = min(self._options.block, next_claim - loop.time())
                reply: Any = await self._redis.xreadgroup(
                    GROUP,
                    self.consumer,
                    {STREAM: ">"},
                    count=free,
                    block=max(1, int(block * 1000)),
                )
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                await ensure_webhook_group(self._redis)  # the stream was deleted under us
                continue
            except (RedisError, OSError):
                log.warning("webhooks: cannot read jobs; retrying", exc_info=True)
                await asyncio.sleep(1.0)
                continue
            for entry_id, fields in _read_entries(reply):
                self._start(entry_id, fields)

    async def _claim(self, count: int) -> None:
        """Take over jobs whose worker stopped heartbeating."""
        start: bytes | str = "0-0"
        idle_ms = int(self._options.claim_idle * 1000)
        while count > 0:
            start, entries, *_ = await self._redis.xautoclaim(
                STREAM, GROUP, self.consumer, idle_ms, start, count=count
            )
            for entry_id, fields in entries:
                entry = _text(entry_id)
                if entry not in self._jobs:
                    log.info("webhooks: took over job %s", entry)
                    self._start(entry, fields)
                    count -= 1
            if _text(start) == "0-0":
                return

    def _start(self, entry_id: str, fields: Mapping[bytes, bytes] | None) -> None:
        try:
            job = WebhookJob.from_fields(fields or {})
        except (KeyError, ValueError, UnicodeDecodeError) as exc:
            work = self._discard(entry_id, fields or {}, f"webhooks: not a job: {exc!r}")
        else:
            work = self._deliver(entry_id, job)
        task = asyncio.create_task(work, name=f"webhooks:{entry_id}")
        self._jobs[entry_id] = task
        task.add_done_callback(functools.partial(self._finished, entry_id))

    def _finished(self, entry_id: str, task: asyncio.Task[None]) -> None:
        if self._jobs.get(entry_id) is task:
            del self._jobs[entry_id]
        self._slot_freed.set()
        if not task.cancelled() and (exc := task.exception()) is not None:
            # Left pending: a worker (this one too) takes it over after claim_idle.
            log.warning("webhooks: job %s interrupted: %r", entry_id, exc)

    async def _heartbeat(self) -> None:
        """Keep the jobs this worker holds from being taken over; drop those it lost."""
        interval = self._options.claim_idle / 3
        while True:
            await asyncio.sleep(interval)
            held = list(self._jobs)
            if not held:
                continue
            try:
                lost = await self._heartbeat_script(
                    keys=[STREAM], args=[GROUP, self.consumer, *held]
                )
            except (RedisError, OSError):
                log.warning("webhooks: heartbeat failed", exc_info=True)
                continue
            for entry in lost:
                task = self._jobs.get(_text(entry))
                if task is not None:
                    log.warning("webhooks: job %s was taken over; stopping here", _text(entry))
                    task.cancel()

    async def _discard(self, entry_id: str, fields: Mapping[bytes, bytes], reason: str) -> None:
        payload = json.dumps({_text(k): _text(v) for k, v in fields.items()})
        await dead_letter(
            self._redis, origin=STREAM, reason=reason, payload=payload, entry_id=entry_id
        )
        await self._done(entry_id)

    async def _done(self, entry_id: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xack(STREAM, GROUP, entry_id)
            pipe.xdel(STREAM, entry_id)
            pipe.hdel(PROGRESS, f"{entry_id}:n", f"{entry_id}:next")
            await pipe.execute()

    async def _deliver(self, entry_id: str, job: WebhookJob) -> None:
        policy, outcomes = self._policy, self._outcomes
        secret = self._secrets.get((job.unit, job.url))
        n_raw, next_raw = await self._redis.hmget(PROGRESS, [f"{entry_id}:n", f"{entry_id}:next"])
        made = int(n_raw or 0)
        if secret is None or made >= policy.max_attempts:
            # Gone from the configuration, or taken over after the last attempt was made
            # (the previous worker died reporting it): give up without another POST.
            reason = (
                "the endpoint is no longer configured for this unit"
                if secret is None
                else f"no success in {made} attempts"
            )
            outcome = Outcome("failed", made, None, None, _utc(self._clock()), reason=reason)
            await outcomes.exhausted(job, outcome)
            await self._done(entry_id)
            return
        if next_raw is not None:  # taken over: keep the schedule of the previous worker
            await asyncio.sleep(max(0.0, float(next_raw) - self._clock()))
        while True:
            attempt = int(await self._redis.hincrby(PROGRESS, f"{entry_id}:n", 1))
            result = await self._attempt(job, secret)
            now = self._clock()
            if result.delivered:
                outcome = Outcome("delivered", attempt, result.status, None, _utc(now))
                await outcomes.delivered(job, outcome)
                await self._done(entry_id)
                log.debug("webhooks: %s delivered to %s", job.msg_id, redact_url(job.url))
                return
            delay = backoff_delay(policy, attempt, result.retry_after, self._rand)
            give_up = self._give_up(job, attempt, result, now + delay)
            if give_up is not None:
                outcome = Outcome(
                    "failed", attempt, result.status, result.error, _utc(now), reason=give_up
                )
                log.warning(
                    "webhooks: giving up on %s to %s: %s",
                    job.msg_id,
                    redact_url(job.url),
                    give_up,
                )
                await outcomes.exhausted(job, outcome)
                await self._done(entry_id)
                return
            await self._redis.hset(PROGRESS, f"{entry_id}:next", repr(now + delay))
            outcome = Outcome(
                "retrying",
                attempt,
                result.status,
                result.error,
                _utc(now),
                next_attempt_at=_utc(now + delay),
            )
            await outcomes.retrying(job, outcome)
            await asyncio.sleep(delay)

    def _give_up(
        self, job: WebhookJob, attempt: int, result: AttemptResult, next_at: float
    ) -> str | None:
        policy = self._policy
        if not result.retryable:
            return f"{result.error}: not retried"
        if attempt >= policy.max_attempts:
            return f"{result.error}: no success in {attempt} attempts"
        if next_at > job.enqueued_at + policy.max_elapsed:
            return f"{result.error}: retry window of {policy.max_elapsed:g}s used up"
        return None

    def _endpoint_slot(self, url: str) -> asyncio.Semaphore:
        slot = self._endpoint_slots.get(url)
        if slot is None:
            slot = self._endpoint_slots[url] = asyncio.Semaphore(self._options.per_endpoint)
        return slot

    async def _attempt(self, job: WebhookJob, secret: str) -> AttemptResult:
        """One signed POST; never raises for what the endpoint or the network did."""
        assert self._client is not None  # run() set it
        async with self._endpoint_slot(job.url), self._requests:
            timestamp = int(self._clock())  # the attempt's, after waiting for a slot
            headers = {
                "content-type": CONTENT_TYPE,
                **signed_headers(secret, job.msg_id, timestamp, job.body),
            }
            try:
                async with asyncio.timeout(self._policy.request_timeout):
                    request = self._client.stream(
                        "POST", job.url, content=job.body, headers=headers
                    )
                    async with request as response:  # the body is never read
                        status = response.status_code
                        retry_after = response.headers.get("retry-after")
            except (TimeoutError, httpx.TimeoutException):
                error = f"no answer within {self._policy.request_timeout:g}s"
                return AttemptResult(None, error, retryable=True)
            except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
                return AttemptResult(None, f"unusable URL: {exc}")
            except (httpx.HTTPError, OSError) as exc:
                return AttemptResult(None, _describe(exc), retryable=True)
        if 200 <= status <= 299:
            return AttemptResult(status)
        return AttemptResult(
            status,
            f"HTTP {status}",
            parse_retry_after(retry_after, self._clock()),
            retryable=is_retryable_status(status),
        )


def _describe(exc: BaseException) -> str:
    detail = str(exc)
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
