"""Webhook delivery: each unit delivery POSTed to the unit's endpoints, signed, retried, recorded.

docs/routing.md, "Webhooks": a unit may have endpoints (``webhooks:`` in the
configuration file). Each delivery is POSTed as the recipient's view of the
CloudEvent (structured mode, ``application/cloudevents+json``), signed per
Standard Webhooks (:mod:`services.notifier.webhook_signing`), retried with
exponential backoff and full jitter (honouring ``Retry-After``), never
blocking other recipients; exhausted retries are recorded, not lost.

Jobs are queued by :mod:`services.notifier.webhook_queue`; the retry
schedule is :mod:`services.notifier.webhook_retry`; outcomes go through
:mod:`services.notifier.webhook_outcomes`; one attempt (signing, kept-alive
connections, concurrency bounds) is :mod:`services.notifier.webhook_delivery`.
This module is the worker:

* :class:`WebhookWorker` reads the stream in the consumer group :data:`GROUP`
  (created at id ``0``) and runs **each job in its own task**. A job is XACKed
  (and XDELed: this stream is a work queue, not a record) only when it has
  finished — delivered, or given up on. Its Redis writes (attempts counted,
  outcome, acknowledgement) share pipelines with the other jobs' of the moment
  (:mod:`services.notifier.webhook_batch`): round trips per batch, not per job.
  Several workers (processes) may share the stream.
* A job stays pending in the group for its whole retry schedule (minutes to
  hours), so the worker **heartbeats** the entries it owns (``XCLAIM …
  JUSTID`` after checking it still owns them, in one script) every
  ``claim_idle / 3``; any worker **reclaims** (``XAUTOCLAIM``) entries idle
  longer than ``claim_idle`` — a dead worker's — on start and every
  ``claim_idle / 2``. A job this worker is finishing is no longer heartbeaten,
  so its acknowledgement is never mistaken for a takeover. Attempts made and the next attempt's time live in
  :data:`PROGRESS`, so a reclaimed job continues its schedule instead of
  starting over. A fresh job's first POST goes out with no write before it (a
  round trip on every delivery's path): a job taken over without a count is
  counted as one attempt made, as its worker may have sent it before dying.
  Delivery is at-least-once; receivers deduplicate on
  ``webhook-id``, which is stable across attempts, workers and restarts.

Why plain ``redis.asyncio`` and not FastStream: FastStream's batch subscriber
acknowledges the whole batch when its handler returns, and its claimer
redelivers an entry whenever it has been pending for ``min_idle_time``. A
webhook job must stay pending through a retry schedule far longer than any
claim idle time and be acknowledged on its own when it finishes, while other
jobs of the same read start, succeed and are acknowledged independently.
That needs per-entry XACK, ownership heartbeats and a concurrency bound per
endpoint, which is this small loop.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from services.core.bus import Unavailable, as_outage, dead_letter
from services.core.config import Webhook
from services.core.loops import log_failure, stop_if_cancelled
from services.notifier.webhook_batch import Batched, Coalescer
from services.notifier.webhook_delivery import Sender
from services.notifier.webhook_outcomes import Outcome, WebhookOutcomes
from services.notifier.webhook_queue import (
    GROUP,
    PROGRESS,
    STREAM,
    WebhookJob,
    ensure_webhook_group,
)
from services.notifier.webhook_retry import (
    DEFAULT_POLICY,
    AttemptResult,
    RetryPolicy,
    backoff_delay,
)

log = logging.getLogger(__name__)

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


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """Concurrency and ownership of one worker (seconds for times)."""

    max_jobs: int = 4000
    """Jobs held at once, sending or waiting for their next attempt."""
    max_requests: int = 256
    """Requests in flight at once, over all endpoints."""
    per_endpoint: int = 16
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


def _set_next(pipe: Any, *, entry: str, attempt: int, at: str) -> None:
    """After a failed attempt: its number (a first attempt was not counted before it) and
    when the next one is due."""
    pipe.hset(PROGRESS, mapping={f"{entry}:n": attempt, f"{entry}:next": at})


def _read_progress(pipe: Any, *, entry: str) -> None:
    """A taken-over job's progress; a job without a count had one attempt at most (its worker
    may have sent it before dying), so it is counted as one."""
    pipe.hsetnx(PROGRESS, f"{entry}:n", 1)
    pipe.hmget(PROGRESS, [f"{entry}:n", f"{entry}:next"])


def _finish(pipe: Any, entries: list[str]) -> None:
    """Finished jobs: acknowledged, deleted, their progress forgotten (three commands in all)."""
    pipe.xack(STREAM, GROUP, *entries)
    pipe.xdel(STREAM, *entries)
    pipe.hdel(PROGRESS, *[f"{e}:{k}" for e in entries for k in ("n", "next")])


class WebhookWorker:
    """Delivers queued jobs until cancelled; run it as a task (:meth:`run`)."""

    def __init__(
        self,
        redis: Redis,
        endpoints: Sequence[Webhook],
        outcomes: WebhookOutcomes,
        consumer: str,
        *,
        policy: RetryPolicy = DEFAULT_POLICY,
        options: WorkerOptions = WorkerOptions(),
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._redis = redis
        self._endpoints = {(w.unit, w.endpoint): w for w in endpoints}
        self._by_url = {(w.unit, w.url): w for w in endpoints}  # jobs of an earlier version
        self._outcomes = outcomes
        self.consumer = consumer
        self._policy = policy
        self._options = options
        self._client = client
        self._sender: Sender | None = None
        self._clock = clock
        self._rand = rand
        self._writes = Coalescer(redis)
        self._finishes = Batched(redis, _finish)
        self._jobs: dict[str, asyncio.Task[None]] = {}
        self._held: set[str] = set()
        """Jobs being worked on and not finishing: the ones heartbeaten."""
        self._slot_freed = asyncio.Event()
        self._heartbeat_script = redis.register_script(_HEARTBEAT_LUA)
        self.running = False
        """True once the worker reads jobs (for readiness checks)."""

    @property
    def in_flight(self) -> int:
        """Jobs held now."""
        return len(self._jobs)

    async def run(self) -> None:
        """Consume jobs until cancelled; held jobs stay pending for the next worker."""
        await ensure_webhook_group(self._redis)
        options = self._options
        self._sender = Sender(
            self._policy,
            max_requests=options.max_requests,
            per_endpoint=options.per_endpoint,
            clock=self._clock,
            client=self._client,
        )
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
            self._held.clear()
            await self._sender.aclose()

    async def _consume(self) -> None:
        loop = asyncio.get_running_loop()
        claim_every = self._options.claim_idle / 2
        next_claim = 0.0
        while True:
            stop_if_cancelled()  # even if a redis-py call swallowed the cancellation
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
                if isinstance(as_outage(exc), Unavailable):  # a primary without its replicas
                    log_failure(log, "webhooks: the server refuses for now; retrying")
                    await asyncio.sleep(1.0)
                    continue
                if "NOGROUP" not in str(exc):
                    raise
                await ensure_webhook_group(self._redis)  # the stream was deleted under us
                continue
            except (RedisError, OSError):
                stop_if_cancelled()  # redis-py may turn our cancellation into its own error
                log_failure(log, "webhooks: cannot read jobs; retrying")
                await asyncio.sleep(1.0)
                continue
            for entry_id, fields in _read_entries(reply):
                self._start(entry_id, fields, fresh=True)

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
                    self._start(entry, fields, fresh=False)
                    count -= 1
            if _text(start) == "0-0":
                return

    def _start(self, entry_id: str, fields: Mapping[bytes, bytes] | None, *, fresh: bool) -> None:
        """``fresh``: first read by this group, so no attempt was made and none is recorded."""
        try:
            job = WebhookJob.from_fields(fields or {})
        except (KeyError, ValueError, UnicodeDecodeError) as exc:
            work = self._discard(entry_id, fields or {}, f"webhooks: not a job: {exc!r}")
        else:
            work = self._deliver(entry_id, job, fresh)
        task = asyncio.create_task(work, name=f"webhooks:{entry_id}")
        self._jobs[entry_id] = task
        self._held.add(entry_id)
        task.add_done_callback(functools.partial(self._finished, entry_id))

    def _finished(self, entry_id: str, task: asyncio.Task[None]) -> None:
        if self._jobs.get(entry_id) is task:
            del self._jobs[entry_id]
            self._held.discard(entry_id)
        self._slot_freed.set()
        if not task.cancelled() and (exc := task.exception()) is not None:
            # Left pending: a worker (this one too) takes it over after claim_idle.
            log.warning("webhooks: job %s interrupted: %r", entry_id, exc)

    async def _heartbeat(self) -> None:
        """Keep the jobs this worker holds from being taken over; drop those it lost."""
        interval = self._options.claim_idle / 3
        while True:
            await asyncio.sleep(interval)
            await self.heartbeat_once()

    async def heartbeat_once(self) -> None:
        """Refresh the jobs held; stop those another worker took over.

        A job that finished meanwhile (acknowledged, so no longer pending) is not one
        of them: it left :attr:`_held` before its acknowledgement was sent.
        """
        held = list(self._held)
        if not held:
            return
        try:
            lost = await self._heartbeat_script(keys=[STREAM], args=[GROUP, self.consumer, *held])
        except (RedisError, OSError):
            stop_if_cancelled()
            log_failure(log, "webhooks: heartbeat failed")
            return
        for raw in lost:
            entry = _text(raw)
            task = self._jobs.get(entry)
            if task is not None and entry in self._held:
                log.warning("webhooks: job %s was taken over; stopping here", entry)
                task.cancel()

    async def _discard(self, entry_id: str, fields: Mapping[bytes, bytes], reason: str) -> None:
        payload = json.dumps({_text(k): _text(v) for k, v in fields.items()})
        await dead_letter(
            self._redis, origin=STREAM, reason=reason, payload=payload, entry_id=entry_id
        )
        await self._done(entry_id)

    async def _done(self, entry_id: str) -> None:
        """Acknowledge and delete a finished job (no longer heartbeaten from here on)."""
        self._held.discard(entry_id)
        await self._finishes.add(entry_id)

    async def _progress(self, entry_id: str) -> tuple[int, float | None]:
        """Attempts made (at least one: see :func:`_read_progress`) and the next attempt's
        time, as a previous worker left them."""
        [_, (n_raw, next_raw)] = await self._writes.run(
            functools.partial(_read_progress, entry=entry_id)
        )
        return int(n_raw), None if next_raw is None else float(next_raw)

    async def _count_attempt(self, entry_id: str, fresh: bool) -> int:
        """The number of the attempt about to be made; recorded before it from the second on
        (a worker dying mid-POST counts it). ``fresh``: a job's first, not written before the
        POST (see :func:`_read_progress`)."""
        if fresh:
            return 1
        [attempt] = await self._writes.run(lambda pipe: pipe.hincrby(PROGRESS, f"{entry_id}:n", 1))
        return int(attempt)

    async def _deliver(self, entry_id: str, job: WebhookJob, fresh: bool) -> None:
        policy, outcomes = self._policy, self._outcomes
        if job.legacy_url is not None:
            endpoint = self._by_url.get((job.unit, job.legacy_url))
        else:
            endpoint = self._endpoints.get((job.unit, job.endpoint))
        made, next_at = (0, None) if fresh else await self._progress(entry_id)
        if endpoint is None or made >= policy.max_attempts:
            # Gone from the configuration, or taken over after the last attempt was made
            # (the previous worker died reporting it): give up without another POST.
            reason = (
                "the endpoint is no longer configured for this unit"
                if endpoint is None
                else f"no success in {made} attempts"
            )
            outcome = Outcome("failed", made, None, None, _utc(self._clock()), reason=reason)
            await outcomes.exhausted(job, outcome)
            await self._done(entry_id)
            return
        if next_at is not None:  # taken over: keep the schedule of the previous worker
            await asyncio.sleep(max(0.0, next_at - self._clock()))
        assert self._sender is not None  # run() made it
        first = fresh
        while True:
            attempt = await self._count_attempt(entry_id, first)
            first = False
            result = await self._sender.attempt(job, endpoint)
            now = self._clock()
            if result.delivered:
                outcome = Outcome("delivered", attempt, result.status, None, _utc(now))
                await outcomes.delivered(job, outcome)
                await self._done(entry_id)
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
                    job.endpoint,
                    give_up,
                )
                await outcomes.exhausted(job, outcome)
                await self._done(entry_id)
                return
            await self._writes.run(
                functools.partial(_set_next, entry=entry_id, attempt=attempt, at=repr(now + delay))
            )
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
