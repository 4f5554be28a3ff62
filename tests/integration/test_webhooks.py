"""Webhook delivery on the session's real server, to a real HTTP receiver on loopback.

Signatures are verified with the ``standardwebhooks`` reference library.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from redis.asyncio import Redis
from standardwebhooks.webhooks import Webhook as Verifier

from schemas.alerts import AlertRef
from services.core import streams
from services.core.config import Webhook
from services.entrypoints.serve import ApiServer
from services.notifier import webhook_queue as queue
from services.notifier.webhook_outcomes import (
    Outcome,
    RedisWebhookOutcomes,
    failure_event_data,
    webhook_outcomes,
)
from services.notifier.webhook_queue import WebhookJob, WebhookQueue, webhook_id
from services.notifier.webhook_retry import RetryPolicy
from services.notifier.webhooks import WebhookWorker, WorkerOptions
from tests import factories
from tests.integration.conftest import eventually

SECRET = "whsec_" + base64.b64encode(b"liaison-webhook-test-secret-32b!").decode()
FAST = RetryPolicy(max_attempts=4, base_delay=0.05, max_delay=0.2, request_timeout=10.0)
OPTIONS = WorkerOptions(claim_idle=0.6, block=0.1)


@dataclass
class Received:
    """One request as the receiver saw it."""

    name: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)
    status: int = 200


class Receiver:
    """A webhook endpoint per path: scripted answers first, then 200; some paths hang."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.scripts: dict[str, list[tuple[int, dict[str, str]]]] = {}
        self.hanging: set[str] = set()
        self.release = asyncio.Event()
        self.app = FastAPI()
        self.app.post("/{name}")(self._hook)

    async def _hook(self, name: str, request: Request) -> Response:
        received = Received(name, dict(request.headers), await request.body())
        self.requests.append(received)
        if name in self.hanging:
            await self.release.wait()
        script = self.scripts.get(name)
        status, headers = script.pop(0) if script else (200, {})
        received.status = status
        return Response(status_code=status, headers=headers)

    def to(self, name: str) -> list[Received]:
        """The requests to one path, in arrival order."""
        return [r for r in self.requests if r.name == name]


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    recv = Receiver()
    server = ApiServer(recv.app, "127.0.0.1", 0)
    base = await server.start()
    try:
        yield recv, base
    finally:
        recv.release.set()  # let hanging requests finish, so the server can stop
        await server.stop()


@pytest.fixture
def dead_url() -> Iterator[str]:
    """A loopback port that refuses connections (bound, never listening)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/hook"


class Recording(RedisWebhookOutcomes):
    """The Redis outcomes, remembering when each was reported."""

    def __init__(self, redis: Redis) -> None:
        super().__init__(redis)
        self.log: list[tuple[str, str, float, Outcome]] = []

    async def retrying(self, job: WebhookJob, outcome: Outcome) -> None:
        self.log.append(("retrying", job.unit, time.monotonic(), outcome))
        await super().retrying(job, outcome)

    async def delivered(self, job: WebhookJob, outcome: Outcome) -> None:
        self.log.append(("delivered", job.unit, time.monotonic(), outcome))
        await super().delivered(job, outcome)

    async def exhausted(self, job: WebhookJob, outcome: Outcome) -> None:
        self.log.append(("exhausted", job.unit, time.monotonic(), outcome))
        await super().exhausted(job, outcome)

    def final(self, unit: str) -> list[tuple[str, float, Outcome]]:
        return [(k, at, o) for k, u, at, o in self.log if u == unit and k != "retrying"]


@contextlib.asynccontextmanager
async def running(worker: WebhookWorker) -> AsyncIterator[asyncio.Task[None]]:
    """The worker as a task, cancelled (like a process stopping) on exit."""
    task = asyncio.create_task(worker.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _ref(alert: dict[str, Any]) -> AlertRef:
    """The alert a factory-made ``alert.raised`` is."""
    return AlertRef(alert["source"].removeprefix("/units/"), alert["id"])


async def _state(redis: Redis, unit: str, alert: AlertRef) -> str | None:
    docs = await webhook_outcomes(redis, unit, alert)
    return docs[0]["state"] if docs else None


async def _queue_is_empty(redis: Redis) -> bool:
    pending = await redis.xpending(queue.STREAM, queue.GROUP)
    return (
        int(pending["pending"]) == 0
        and await redis.xlen(queue.STREAM) == 0
        and await redis.hlen(queue.PROGRESS) == 0
    )


async def test_a_receiver_that_fails_twice_then_succeeds_gets_one_valid_delivery(
    redis: Redis, receiver: tuple[Receiver, str]
) -> None:
    recv, base = receiver
    recv.scripts["gulistan"] = [(503, {}), (429, {"Retry-After": "0"})]
    endpoint = Webhook(unit="IMT-GULISTAN", url=f"{base}/gulistan", secret=SECRET, allow_http=True)
    alert = factories.alert()
    queue = WebhookQueue(redis, [endpoint])
    assert await queue.enqueue("IMT-GULISTAN", _ref(alert), alert) == 1
    assert await queue.enqueue("IMT-GULISTAN", _ref(alert), alert) == 0  # a re-run fan-out
    assert await queue.enqueue("IMT-TASHKENT", _ref(alert), alert) == 0  # no endpoint

    worker = WebhookWorker(redis, [endpoint], RedisWebhookOutcomes(redis), "w1",
                           policy=FAST, options=OPTIONS)  # fmt: skip
    async with running(worker):

        async def delivered() -> bool:
            return await _state(redis, "IMT-GULISTAN", _ref(alert)) == "delivered"

        await eventually(delivered)
        await eventually(lambda: _queue_is_empty(redis))

    attempts = recv.to("gulistan")
    assert [r.status for r in attempts] == [503, 429, 200]
    assert {r.headers["webhook-id"] for r in attempts} == {
        webhook_id(alert["source"], alert["id"], "IMT-GULISTAN")
    }
    for request in attempts:
        assert request.headers["content-type"].startswith("application/cloudevents+json")
        assert Verifier(SECRET).verify(request.body, request.headers) == alert
    [record] = await webhook_outcomes(redis, "IMT-GULISTAN", _ref(alert))
    assert record | {"at": None} == {
        "webhook_id": webhook_id(alert["source"], alert["id"], "IMT-GULISTAN"),
        "event_id": alert["id"],
        "endpoint": endpoint.endpoint, "state": "delivered", "attempts": 3, "last_status": 200,
        "last_error": None, "reason": None, "next_attempt_at": None, "at": None,
    }  # fmt: skip


async def test_a_dead_endpoint_is_exhausted_and_recorded_without_delaying_others(
    redis: Redis, receiver: tuple[Receiver, str], dead_url: str
) -> None:
    recv, base = receiver
    dead = Webhook(unit="BLO-OYBEK", url=dead_url, secret=SECRET, allow_http=True)
    healthy = Webhook(unit="IMT-TASHKENT", url=f"{base}/tashkent", secret=SECRET, allow_http=True)
    alert = factories.alert()
    queue = WebhookQueue(redis, [dead, healthy])
    await queue.enqueue("BLO-OYBEK", _ref(alert), alert)  # queued first
    await queue.enqueue("IMT-TASHKENT", _ref(alert), alert)
    outcomes = Recording(redis)
    # No jitter here: the dead endpoint's schedule is 0.05 + 0.1 + 0.2 s, deterministically.
    worker = WebhookWorker(redis, [dead, healthy], outcomes, "w1", policy=FAST, options=OPTIONS,
                           rand=lambda: 1.0)  # fmt: skip
    async with running(worker):

        async def both_settled() -> bool:
            return bool(outcomes.final("BLO-OYBEK")) and bool(outcomes.final("IMT-TASHKENT"))

        await eventually(both_settled)
        await eventually(lambda: _queue_is_empty(redis))

    [(kind, exhausted_at, outcome)] = outcomes.final("BLO-OYBEK")
    assert kind == "exhausted"
    assert outcome.attempts == FAST.max_attempts
    assert outcome.last_status is None
    assert "ConnectError" in (outcome.last_error or "")
    [arrived] = recv.to("tashkent")
    assert arrived.at < exhausted_at  # the healthy endpoint did not wait for the dead one
    assert Verifier(SECRET).verify(arrived.body, arrived.headers) == alert

    [record] = await webhook_outcomes(redis, "BLO-OYBEK", _ref(alert))
    assert (record["state"], record["attempts"], record["endpoint"]) == ("failed", 4, dead_url)
    assert "no success in 4 attempts" in record["reason"]
    job = WebhookJob(record["webhook_id"], "BLO-OYBEK", alert["id"], "BLO-OYBEK", alert["id"],
                     dead_url, b"", time.time())  # fmt: skip
    data = failure_event_data(job, outcome)
    assert data["endpoint"] == dead_url
    assert data["attempts"] == 4


async def test_a_slow_endpoint_holds_only_its_own_share_of_requests(
    redis: Redis, receiver: tuple[Receiver, str]
) -> None:
    recv, base = receiver
    recv.hanging.add("slow")
    slow = Webhook(unit="BLO-OYBEK", url=f"{base}/slow", secret=SECRET, allow_http=True)
    healthy = Webhook(unit="IMT-TASHKENT", url=f"{base}/tashkent", secret=SECRET, allow_http=True)
    queue = WebhookQueue(redis, [slow, healthy])
    alerts = [factories.alert() for _ in range(3)]
    for alert in alerts:
        await queue.enqueue("BLO-OYBEK", _ref(alert), alert)
    await queue.enqueue("IMT-TASHKENT", _ref(alerts[0]), alerts[0])
    # Two requests in flight in all, one per endpoint: without the per-endpoint bound the
    # slow endpoint's three jobs would hold both and the healthy delivery would wait.
    options = WorkerOptions(claim_idle=0.6, block=0.1, max_requests=2, per_endpoint=1)
    worker = WebhookWorker(redis, [slow, healthy], RedisWebhookOutcomes(redis), "w1",
                           policy=FAST, options=options)  # fmt: skip
    async with running(worker):

        async def healthy_delivered() -> bool:
            return await _state(redis, "IMT-TASHKENT", _ref(alerts[0])) == "delivered"

        await eventually(healthy_delivered)
        assert len(recv.to("slow")) == 1  # still hanging, the other two waiting their turn
        recv.release.set()

        async def all_delivered() -> bool:
            states = [await _state(redis, "BLO-OYBEK", _ref(a)) for a in alerts]
            return states == ["delivered"] * 3

        await eventually(all_delivered)
        await eventually(lambda: _queue_is_empty(redis))


async def test_a_worker_killed_mid_retry_is_taken_over_and_the_schedule_kept(
    redis: Redis, receiver: tuple[Receiver, str]
) -> None:
    recv, base = receiver
    recv.scripts["gulistan"] = [(503, {"Retry-After": "1"})]
    endpoint = Webhook(unit="IMT-GULISTAN", url=f"{base}/gulistan", secret=SECRET, allow_http=True)
    alert = factories.alert()
    await WebhookQueue(redis, [endpoint]).enqueue("IMT-GULISTAN", _ref(alert), alert)

    first = WebhookWorker(redis, [endpoint], RedisWebhookOutcomes(redis), "dies",
                          policy=FAST, options=OPTIONS)  # fmt: skip
    async with running(first):

        async def retrying() -> bool:
            return await _state(redis, "IMT-GULISTAN", _ref(alert)) == "retrying"

        await eventually(retrying)
    # Killed while waiting for its second attempt: the job is still pending, and its own.
    [pending] = await redis.xpending_range(queue.STREAM, queue.GROUP, "-", "+", 10)
    assert pending["consumer"] == b"dies"

    second = WebhookWorker(redis, [endpoint], RedisWebhookOutcomes(redis), "takes-over",
                           policy=FAST, options=OPTIONS)  # fmt: skip
    async with running(second):

        async def delivered() -> bool:
            return await _state(redis, "IMT-GULISTAN", _ref(alert)) == "delivered"

        await eventually(delivered)
        await eventually(lambda: _queue_is_empty(redis))

    attempts = recv.to("gulistan")
    assert [r.status for r in attempts] == [503, 200]
    assert attempts[0].headers["webhook-id"] == attempts[1].headers["webhook-id"]
    assert attempts[1].at - attempts[0].at >= 0.9  # Retry-After: 1 survived the takeover
    for request in attempts:
        Verifier(SECRET).verify(request.body, request.headers)
    [record] = await webhook_outcomes(redis, "IMT-GULISTAN", _ref(alert))
    assert (record["state"], record["attempts"]) == ("delivered", 2)


async def test_a_live_worker_keeps_its_job_through_a_long_wait(
    redis: Redis, receiver: tuple[Receiver, str]
) -> None:
    recv, base = receiver
    recv.scripts["gulistan"] = [(503, {"Retry-After": "2"})]  # longer than claim_idle
    endpoint = Webhook(unit="IMT-GULISTAN", url=f"{base}/gulistan", secret=SECRET, allow_http=True)
    alert = factories.alert()
    await WebhookQueue(redis, [endpoint]).enqueue("IMT-GULISTAN", _ref(alert), alert)

    def worker(name: str, client: httpx.AsyncClient) -> WebhookWorker:
        return WebhookWorker(redis, [endpoint], RedisWebhookOutcomes(redis), name,
                             policy=FAST, options=OPTIONS, client=client)  # fmt: skip

    async with (
        httpx.AsyncClient(headers={"x-worker": "a"}) as client_a,
        httpx.AsyncClient(headers={"x-worker": "b"}) as client_b,
        running(worker("a", client_a)),
        running(worker("b", client_b)),
    ):

        async def delivered() -> bool:
            return await _state(redis, "IMT-GULISTAN", _ref(alert)) == "delivered"

        await eventually(delivered)
        await eventually(lambda: _queue_is_empty(redis))

    attempts = recv.to("gulistan")
    assert [r.status for r in attempts] == [503, 200]
    assert attempts[0].headers["x-worker"] == attempts[1].headers["x-worker"]


async def test_an_entry_that_is_not_a_job_is_dead_lettered(redis: Redis) -> None:
    await queue.ensure_webhook_group(redis)
    await redis.xadd(queue.STREAM, {"unit": "IMT-GULISTAN"})
    worker = WebhookWorker(redis, [], RedisWebhookOutcomes(redis), "w1", options=OPTIONS)
    async with running(worker):

        async def dead_lettered() -> bool:
            return await redis.xlen(streams.DEAD_LETTERS) == 1

        await eventually(dead_lettered)
        await eventually(lambda: _queue_is_empty(redis))
    entries = await redis.xrange(streams.DEAD_LETTERS)
    assert entries is not None
    [(_id, fields)] = entries
    assert fields is not None
    reason = fields[b"reason"]
    assert isinstance(reason, bytes)
    assert b"not a job" in reason


async def test_an_endpoint_removed_from_the_configuration_is_given_up_on(
    redis: Redis, receiver: tuple[Receiver, str]
) -> None:
    recv, base = receiver
    endpoint = Webhook(unit="IMT-GULISTAN", url=f"{base}/gulistan", secret=SECRET, allow_http=True)
    alert = factories.alert()
    await WebhookQueue(redis, [endpoint]).enqueue("IMT-GULISTAN", _ref(alert), alert)
    worker = WebhookWorker(redis, [], RedisWebhookOutcomes(redis), "w1", options=OPTIONS)
    async with running(worker):

        async def failed() -> bool:
            return await _state(redis, "IMT-GULISTAN", _ref(alert)) == "failed"

        await eventually(failed)
        await eventually(lambda: _queue_is_empty(redis))
    assert recv.requests == []
    [record] = await webhook_outcomes(redis, "IMT-GULISTAN", _ref(alert))
    assert record["reason"] == "the endpoint is no longer configured for this unit"


async def test_a_job_queued_by_an_earlier_version_is_delivered_and_shown_by_name(
    redis: Redis, receiver: tuple[Receiver, str]
) -> None:
    """Jobs queued before endpoints had names carry the URL (and no alert_source: the body's
    source is the alert's); they still go, shown redacted, beside their alert's inbox entry."""
    recv, base = receiver
    url = base.replace("://", "://siem:hunter2@") + "/gulistan?api_key=K1"
    endpoint = Webhook(unit="IMT-GULISTAN", name="siem", url=url, secret=SECRET, allow_http=True)
    alert = factories.alert()
    msg_id = webhook_id(alert["source"], alert["id"], "IMT-GULISTAN")
    await queue.ensure_webhook_group(redis)
    await redis.xadd(queue.STREAM, {
        "msg_id": msg_id, "unit": "IMT-GULISTAN", "alert_id": alert["id"],
        "event_id": alert["id"], "url": url, "body": queue.encode_body(alert),
        "enqueued_at": repr(time.time()),
    })  # fmt: skip
    worker = WebhookWorker(redis, [endpoint], RedisWebhookOutcomes(redis), "w1",
                           policy=FAST, options=OPTIONS)  # fmt: skip
    async with running(worker):

        async def delivered() -> bool:
            return await _state(redis, "IMT-GULISTAN", _ref(alert)) == "delivered"

        await eventually(delivered)
    [request] = recv.to("gulistan")
    assert Verifier(SECRET).verify(request.body, request.headers) == alert
    [record] = await webhook_outcomes(redis, "IMT-GULISTAN", _ref(alert))
    assert record["endpoint"] == f"{base}/gulistan"
