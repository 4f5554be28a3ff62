"""The claimer of a consumer group: reclaims entries left pending, in batches.

Nothing redelivers a pending entry except a claimer (a crashed consumer's
entries, a batch whose handler raised, a group commit that failed). After
``retry_cap`` deliveries an entry goes to the dead-letter stream with the
reason, so one bad entry never blocks a stream.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from services.core import streams
from services.core.bus import OUTAGES, Entry, dead_letter
from services.core.loops import forever, log_failure
from services.core.metrics import DEAD_LETTERED, NO_METRICS, REDELIVERIES, Metrics

log = logging.getLogger(__name__)

EntryHandler = Callable[[Sequence[Entry]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class GroupOptions:
    """Tuning of one consumer group's reader and claimer."""

    max_records: int = 500
    polling_ms: int = 100
    claim_idle_ms: int = 30_000
    retry_cap: int = 5
    queue_batches: int = 8
    """Pipelined readers only: batches read ahead of the writer before reading pauses."""


def stream_entry(stream: str, entry_id: bytes | str, fields: dict[bytes, bytes]) -> Entry:
    """One entry as handlers see it: the event field, or every field when it has none."""
    payload = fields.get(streams.EVENT_FIELD.encode())
    if payload is None:  # not written by Liaison Exchange: keep every field for the dead letters
        payload = json.dumps(
            {k.decode(errors="replace"): v.decode(errors="replace") for k, v in fields.items()}
        ).encode()
    return Entry(stream, entry_id.decode() if isinstance(entry_id, bytes) else entry_id, payload)


class Claimer:
    """Takes over entries pending longer than ``claim_idle_ms``, a batch at a time.

    Our own loop rather than FastStream's ``min_idle_time`` subscriber, which
    claims one entry per call: after a crash that means one transaction per
    entry. An entry delivered more than ``retry_cap`` times goes to the
    dead-letter stream, with the reason, and is acknowledged — unless its
    handler failed for an outage (:data:`OUTAGES`): then the claim is undone
    (the delivery count put back) and retried after ``claim_idle_ms``.
    """

    def __init__(
        self,
        redis: Redis,
        stream: str,
        group: str,
        consumer: str,
        handler: EntryHandler,
        options: GroupOptions,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self.redis, self.stream, self.group, self.consumer = redis, stream, group, consumer
        self.handler, self.options, self.metrics = handler, options, metrics
        for counter in (REDELIVERIES, DEAD_LETTERED):  # exposed at 0 from the start
            metrics.inc(counter, 0, stream, group)
        self._last_error: dict[str, str] = {}  # entry id → why it last failed alone (this process)

    @property
    def name(self) -> str:
        """For logs: which stream and group it claims for."""
        return f"claimer {self.stream}/{self.group}"

    async def run(self) -> None:
        """Claim until cancelled; failures are logged and retried on the next round."""

        async def drain() -> None:
            while await self.claim_once() == self.options.max_records:
                pass  # a full batch: more may be waiting

        pause = max(self.options.claim_idle_ms / 4000, 0.05)
        await forever(drain, pause, f"claimer of {self.stream}/{self.group}")

    async def claim_once(self) -> int:
        """One XAUTOCLAIM round over the whole pending list; returns entries claimed."""
        cursor, claimed = "0-0", 0
        while True:
            reply: Any = await self.redis.xautoclaim(
                self.stream,
                self.group,
                self.consumer,
                self.options.claim_idle_ms,
                start_id=cursor,
                count=self.options.max_records,
            )
            cursor = reply[0].decode() if isinstance(reply[0], bytes) else reply[0]
            entries = [
                stream_entry(self.stream, eid, fields)
                for eid, fields in reply[1]
                if fields is not None
            ]
            if entries:
                await self._settle(entries)
                claimed += len(entries)
            if cursor == "0-0":
                return claimed

    async def _settle(self, entries: list[Entry]) -> None:
        counts = await self._deliveries(entries)
        retry = [e for e in entries if counts.get(e.entry_id, 0) <= self.options.retry_cap]
        for entry in entries:
            if counts.get(entry.entry_id, 0) > self.options.retry_cap:
                reason = f"{self.group}: still failing after {self.options.retry_cap} deliveries"
                if last := self._last_error.pop(entry.entry_id, None):
                    reason += f"; last: {last}"
                log.error("dead-lettering %s %s: %s", self.stream, entry.entry_id, reason)
                await dead_letter(
                    self.redis,
                    origin=self.stream,
                    reason=reason,
                    payload=entry.payload,
                    entry_id=entry.entry_id,
                )
        done = [e for e in entries if e not in retry]
        self.metrics.inc(DEAD_LETTERED, len(done), self.stream, self.group)
        self.metrics.inc(REDELIVERIES, len(retry), self.stream, self.group)
        if retry:
            try:
                done += await self._handle(retry)
            except OUTAGES:
                log_failure(
                    log,
                    "%s: handler unavailable; %d entries wait for the next round",
                    self.name,
                    len(retry),
                )
                await self._unclaim(retry, counts)
        for entry in done:
            self._last_error.pop(entry.entry_id, None)
        if done:
            await self.redis.xack(self.stream, self.group, *[e.entry_id for e in done])

    async def _handle(self, entries: list[Entry]) -> list[Entry]:
        """Handle a batch; if it fails, each entry alone, so one bad entry fails alone."""
        try:
            await self.handler(entries)
            return entries
        except OUTAGES:
            raise  # not the entries' fault: split nothing, count nothing
        except Exception as exc:
            if len(entries) == 1:
                log.warning("%s %s failed again", self.stream, entries[0].entry_id, exc_info=True)
                self._last_error[entries[0].entry_id] = f"{type(exc).__name__}: {exc}"[:500]
                return []
        handled = []
        for entry in entries:
            handled += await self._handle([entry])
        return handled

    async def _unclaim(self, entries: list[Entry], counts: dict[str, int]) -> None:
        """Put each entry's delivery count back to before this claim (``XCLAIM … RETRYCOUNT``)."""
        pipe = self.redis.pipeline(transaction=False)
        for entry in entries:
            pipe.xclaim(
                self.stream,
                self.group,
                self.consumer,
                0,
                [entry.entry_id],
                retrycount=max(counts.get(entry.entry_id, 1) - 1, 0),
                justid=True,
            )
        await pipe.execute()

    async def _deliveries(self, entries: list[Entry]) -> dict[str, int]:
        pending: Any = await self.redis.xpending_range(
            self.stream,
            self.group,
            min=entries[0].entry_id,
            max=entries[-1].entry_id,
            count=len(entries) * 2,
            consumername=self.consumer,
        )
        return {_text(p["message_id"]): int(p["times_delivered"]) for p in pending}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
