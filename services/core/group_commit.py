"""Group commit: one serial writer behind several stream readers, reads overlapping commits.

A serial writer (the ledger: one hash chain, one transaction at a time)
that read, committed and acknowledged one batch after the other would leave
the database idle while it reads and Redis idle while it commits. Here the
readers (``services.core.streaming.subscribe_pipelined``) *prepare* their
batches and queue them; :class:`GroupCommit` takes everything queued,
commits it with one call, and only then acknowledges it (``XACK``, one
round trip for every stream). The queue is bounded, so a slow writer stops
the readers rather than filling memory.

If the commit fails, the entries are left pending: the stream's claimer
retries them after its idle time, as it does for a crashed consumer. A
commit that did its work but for some entries raises :class:`PartlyCommitted`:
only those are left pending.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from redis.asyncio import Redis

from services.core.bus import Entry
from services.core.loops import log_failure

log = logging.getLogger(__name__)

T = TypeVar("T")
FAILURE_PAUSE = 0.5  # seconds: after a failed commit, before the next (the database may be down)


class PartlyCommitted(Exception):
    """Raised by a commit that did its work except for some entries, which must stay pending
    (for the claimer to retry); the rest is acknowledged."""

    def __init__(self, entry_ids: Collection[str], why: str) -> None:
        super().__init__(why)
        self.entry_ids = frozenset(entry_ids)


@dataclass(frozen=True, slots=True)
class Prepared(Generic[T]):
    """One batch read from a stream, prepared, waiting for the commit."""

    stream: str
    entry_ids: tuple[str, ...]
    work: T


class GroupCommit(Generic[T]):
    """Commits what readers queued, many batches per call, and acknowledges after the commit.

    ``commit`` receives the prepared work of every batch taken, in queue
    order; it raises only for failures worth retrying.
    """

    def __init__(
        self,
        redis: Redis,
        group: str,
        commit: Callable[[Sequence[T]], Awaitable[object]],
        queue_batches: int,
    ) -> None:
        self.redis, self.group, self.commit = redis, group, commit
        self._queue: asyncio.Queue[Prepared[T]] = asyncio.Queue(maxsize=queue_batches)
        self._stopped = False

    @property
    def name(self) -> str:
        """For logs: whose writer this is."""
        return f"group commit of {self.group}"

    async def put(self, stream: str, entries: Sequence[Entry], work: T) -> None:
        """Queue one prepared batch; waits while the queue is full (backpressure).

        Raises once the writer has stopped: the batch stays pending for a claimer.
        """
        if self._stopped:
            raise RuntimeError(f"{self.name} has stopped; the batch stays pending")
        await self._queue.put(Prepared(stream, tuple(e.entry_id for e in entries), work))

    async def run(self) -> None:
        """Commit and acknowledge until cancelled; a failed commit leaves its entries pending."""
        self._stopped = False
        try:
            while True:
                batches = [await self._queue.get()]
                while not self._queue.empty():  # everything read meanwhile joins this commit
                    batches.append(self._queue.get_nowait())
                if not await self._settle(batches):
                    await asyncio.sleep(FAILURE_PAUSE)
        finally:
            self._stop()

    def _stop(self) -> None:
        """Refuse further batches and release readers waiting on a full queue (so that the
        broker can stop); what was queued stays pending, for a claimer."""
        self._stopped = True
        while not self._queue.empty():
            self._queue.get_nowait()

    async def _settle(self, batches: list[Prepared[T]]) -> bool:
        task = asyncio.current_task()
        kept: frozenset[str] = frozenset()
        try:
            await self.commit([b.work for b in batches])
        except PartlyCommitted as exc:
            kept = exc.entry_ids
            log.info("%s: %d entries stay pending for the claimer: %s", self.name, len(kept), exc)
        except Exception:
            if task is not None and task.cancelling():
                raise asyncio.CancelledError from None
            entries = sum(len(b.entry_ids) for b in batches)
            log_failure(
                log,
                "%s: commit of %d entries failed; they stay pending for the claimer",
                self.name,
                entries,
            )
            return False
        try:
            await self._ack(batches, kept)
        except Exception:  # committed: a redelivery is recognised as already recorded
            if task is not None and task.cancelling():
                raise asyncio.CancelledError from None
            log_failure(log, "%s: acknowledgement failed after the commit", self.name)
            return False
        return True

    async def _ack(self, batches: list[Prepared[T]], kept: frozenset[str]) -> None:
        ids: dict[str, list[str]] = {}
        for batch in batches:
            ids.setdefault(batch.stream, []).extend(e for e in batch.entry_ids if e not in kept)
        pipe = self.redis.pipeline(transaction=False)
        for stream, entry_ids in ids.items():
            if entry_ids:
                pipe.xack(stream, self.group, *entry_ids)
        await pipe.execute()
