"""The webhook worker in a process of its own, so that delivery has a core to itself.

``liaison up`` runs ingest, the ledger, the notifier and the HTTP API on one
event loop; pushing thousands of webhooks a second there took the one core
they share. :class:`WebhookProcess` (the parent's side) starts
``python -m services.notifier.webhook_process`` with the same environment and
the server's URL, restarts it if it dies, and stops it with the parent.
Several such processes (or ``liaison serve notifier`` elsewhere) may share the
job stream: each is its own consumer of the group, and a dead one's jobs are
taken over (:mod:`services.notifier.webhooks`).

The child writes one JSON line to its standard output when it reads jobs
(``{"running": true}``) and then, at most every :data:`REPORT_EVERY` seconds,
the counts it added (``{"inc": [[counter, [labels…], amount], …]}``): the
parent adds them to its own metrics, so ``/metrics`` shows webhook outcomes as
before. The child stops when its standard input closes — the parent ended,
however it ended — or on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys

from services.core.config import FileConfig, read_file_config
from services.core.loops import log_failure
from services.core.metrics import COUNTERS, CounterSpec, Metrics
from services.core.redis_client import RedisTarget
from services.core.settings import Settings, settings_from_env

log = logging.getLogger(__name__)

REPORT_EVERY = 1.0
"""Seconds between the child's reports of counts (metrics lag by at most this)."""
RESTART_PAUSE = 1.0
START_WAIT = 30.0
"""Seconds :meth:`WebhookProcess.start` waits for the child to read jobs."""
STOP_GRACE = 10.0
"""Seconds the child has to stop after SIGTERM before it is killed."""
_SPECS = {spec.name: spec for spec in COUNTERS}


class _Tally:
    """:class:`~services.core.metrics.Metrics` of the child: counts kept until reported."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, tuple[str, ...]], float] = {}

    def inc(self, counter: CounterSpec, amount: float = 1, *labels: str) -> None:
        key = (counter.name, labels)
        self.counts[key] = self.counts.get(key, 0.0) + amount

    def drain(self) -> list[list[object]]:
        out: list[list[object]] = [[n, list(lb), a] for (n, lb), a in self.counts.items() if a]
        self.counts.clear()
        return out


def _say(message: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def run_worker(settings: Settings, config: FileConfig) -> None:
    """The child: one webhook worker on ``settings.redis_url`` until told to stop."""
    from services.core.bus import RedisPublisher
    from services.core.redis_client import configured_target, connect
    from services.core.wiring import consumer_name
    from services.notifier.webhook_metrics import CountedWebhookOutcomes
    from services.notifier.webhook_outcomes import RecordedWebhookOutcomes
    from services.notifier.webhooks import WebhookWorker, WorkerOptions

    nodes, master = settings.sentinel_nodes, settings.redis_sentinel_master
    target = configured_target(settings.redis_url, nodes, master)
    assert target is not None  # the parent passes its server's
    redis = connect(target)
    tally = _Tally()
    outcomes = CountedWebhookOutcomes(
        RecordedWebhookOutcomes(redis, RedisPublisher(redis, **settings.publisher_options)), tally
    )
    options = WorkerOptions(claim_idle=settings.claim_idle.total_seconds())
    worker = WebhookWorker(
        redis, config.webhooks, outcomes, consumer_name("webhooks"), options=options
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not os.read(0, 4096) else None)
    task = asyncio.create_task(worker.run(), name="webhooks")
    try:
        while not worker.running and not task.done():
            await asyncio.sleep(0.01)
        _say({"running": True})
        while not stop.is_set() and not task.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), REPORT_EVERY)
            if counts := tally.drain():
                _say({"inc": counts})
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if counts := tally.drain():
            _say({"inc": counts})
        await redis.aclose()


class WebhookProcess:
    """The parent's side: starts the child, keeps it running, adds its counts, stops it."""

    def __init__(self, target: RedisTarget, metrics: Metrics) -> None:
        self._env = {**os.environ, "LIAISON_REDIS_URL": target.url}
        if target.sentinels:  # the parent's settings may not come from its environment
            self._env["LIAISON_REDIS_SENTINELS"] = ",".join(f"{h}:{p}" for h, p in target.sentinels)
            self._env["LIAISON_REDIS_SENTINEL_MASTER"] = target.master
        self._metrics = metrics
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._running = asyncio.Event()

    @property
    def running(self) -> bool:
        """The child reads jobs now (for readiness)."""
        return self._running.is_set()

    async def start(self) -> None:
        """Start the child and its supervision; return once it reads jobs (or after
        :data:`START_WAIT`, with an error logged: readiness then says so)."""
        self._task = asyncio.create_task(self._supervise(), name="webhooks process")
        try:
            async with asyncio.timeout(START_WAIT):
                await self._running.wait()
        except TimeoutError:
            log.error("webhooks: the worker process has not started within %gs", START_WAIT)

    async def _supervise(self) -> None:
        while True:
            try:
                await self._run_once()
            except Exception:
                log_failure(log, "webhooks: cannot start the worker process")
            self._running.clear()
            log.error("webhooks: the worker process ended; starting another")
            await asyncio.sleep(RESTART_PAUSE)

    async def _run_once(self) -> None:
        pipe = asyncio.subprocess.PIPE
        self._proc = proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", __name__, stdin=pipe, stdout=pipe, env=self._env
        )
        assert proc.stdout is not None
        async for line in proc.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if message.get("running"):
                self._running.set()
            for name, labels, amount in message.get("inc", ()):
                if (spec := _SPECS.get(name)) is not None:
                    self._metrics.inc(spec, float(amount), *labels)
        await proc.wait()

    async def stop(self) -> None:
        """Stop the child (SIGTERM; killed after :data:`STOP_GRACE`) and its supervision."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        proc = self._proc
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                async with asyncio.timeout(STOP_GRACE):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        self._running.clear()


def main() -> None:
    """Entry point of the child (``python -m services.notifier.webhook_process``)."""
    from services.core import log_hygiene

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    log_hygiene.install()
    settings = settings_from_env()
    asyncio.run(run_worker(settings, read_file_config(settings.config)))


if __name__ == "__main__":
    main()
