"""Three webhook worker processes share the job stream; one is SIGKILLed mid-flow.

The workers are real processes (``python -m services.notifier.webhook_process``, what
``liaison up`` starts) on the session's server; the receiver is a real HTTP server on
loopback counting requests by (``webhook-id``, endpoint). Every job reaches it; jobs wait
longer than the claim idle time for their retry (heartbeats keep them); only a
job the killed worker held when it died may arrive twice (its POST may have been answered
before the kill let it record that), and every signature verifies.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from redis.asyncio import Redis
from standardwebhooks.webhooks import Webhook as Verifier

from schemas.alerts import AlertRef
from services.core.config import Webhook
from services.notifier import webhook_queue as queue
from services.notifier.webhook_queue import WebhookQueue
from tests import factories
from tests.integration.conftest import eventually
from tests.integration.webhook_receiver import CountingReceiver

SECRET = "whsec_" + base64.b64encode(b"liaison-webhook-test-secret-32b!").decode()
UNITS = ("IMT-GULISTAN", "BLO-OYBEK")
ALERTS = 300


class Worker:
    """One worker process; its stdin held open (it stops when that closes)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def started(self) -> None:
        assert self.proc.stdout is not None
        async with asyncio.timeout(30):
            while json.loads(await self.proc.stdout.readline()).get("running") is not True:
                pass

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[CountingReceiver, str]]:
    # Slow, so each worker holds many jobs when one is killed; and one endpoint asks every
    # job to come back in 2 s, longer than the claim idle time: only heartbeats keep them.
    recv = CountingReceiver(delay=0.1, retry_first=frozenset({f"/{UNITS[1]}"}))
    base = await recv.start()
    try:
        yield recv, base
    finally:
        await recv.stop()


async def _start_workers(n: int, env: dict[str, str]) -> list[Worker]:
    workers = []
    for _ in range(n):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.notifier.webhook_process",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        workers.append(Worker(proc))
    for worker in workers:
        await worker.started()
    return workers


async def test_three_workers_and_a_kill_deliver_each_job_once_to_a_healthy_receiver(
    redis: Redis, redis_url: str, receiver: tuple[CountingReceiver, str], tmp_path: Path
) -> None:
    recv, base = receiver
    hooks = [Webhook(unit=u, url=f"{base}/{u}", secret=SECRET, allow_http=True) for u in UNITS]
    config = tmp_path / "liaison.yaml"
    config.write_text(
        yaml.safe_dump({"webhooks": [h.model_dump(exclude_none=True) for h in hooks]})
    )
    env = {
        **os.environ,
        "LIAISON_REDIS_URL": redis_url,
        "LIAISON_CONFIG": str(config),
        "LIAISON_DATA_DIR": str(tmp_path / "var"),
        "LIAISON_CLAIM_IDLE": "1s",
    }
    await queue.ensure_webhook_group(redis)
    workers = await _start_workers(3, env)
    try:
        webhooks = WebhookQueue(redis, hooks)
        alerts = [factories.alert() for _ in range(ALERTS)]
        for alert in alerts:
            ref = AlertRef(alert["source"].removeprefix("/units/"), alert["id"])
            for unit in UNITS:
                await webhooks.enqueue(unit, ref, alert)

        async def some_arrived() -> bool:
            return len(recv.requests) >= ALERTS // 4

        await eventually(some_arrived, timeout=30)
        summary = await redis.xpending(queue.STREAM, queue.GROUP)
        busiest = max(summary["consumers"], key=lambda c: int(c["pending"]))["name"]
        [victim] = [w for w in workers if f":{w.proc.pid}:".encode() in busiest]
        victim.kill()  # the worker holding the most jobs
        await victim.proc.wait()
        held = await redis.xpending_range(queue.STREAM, queue.GROUP, "-", "+", 10_000)
        mine = [p["message_id"] for p in held if f":{victim.proc.pid}:".encode() in p["consumer"]]
        at_risk = set()
        for entry_id in mine:
            [(_, fields)] = await redis.xrange(queue.STREAM, entry_id, entry_id)
            at_risk.add((fields[b"msg_id"].decode(), fields[b"unit"].decode()))

        async def all_done() -> bool:
            pending = await redis.xpending(queue.STREAM, queue.GROUP)
            return int(pending["pending"]) == 0 and await redis.xlen(queue.STREAM) == 0

        await eventually(all_done, timeout=60)
    finally:
        for worker in workers:
            if worker.proc.returncode is None:
                worker.proc.send_signal(signal.SIGTERM)
            await worker.proc.wait()

    counts: dict[tuple[str, str], int] = {}
    for seen in recv.requests:
        Verifier(SECRET).verify(seen.body, seen.headers)
        if seen.status != 200:
            continue
        key = (seen.headers["webhook-id"], seen.path.removeprefix("/"))
        counts[key] = counts.get(key, 0) + 1
    assert any(seen.status == 503 for seen in recv.requests)
    assert len(counts) == ALERTS * len(UNITS)  # every job arrived
    twice = {key for key, n in counts.items() if n > 1}
    assert twice <= at_risk  # only what the killed worker held may have arrived again
    assert max(counts.values()) <= 2
