"""Redis writes of many webhook jobs in one round trip.

Hundreds of jobs finish at once under load; each used to make its own round
trips (record the outcome, acknowledge). :class:`Coalescer` gathers the
commands that tasks ask for while a round trip is on its way and sends them as
the next pipeline, so round trips grow with time, not with jobs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

MAX_BATCH = 1000
"""Callers per pipeline: bounds one round trip's size."""

Commands = Callable[[Pipeline], object]
"""Adds commands to a pipeline (what pipeline methods return is ignored)."""


class Coalescer:
    """Runs the commands of concurrent callers in shared pipelines (not transactions).

    Each caller gets its own replies, or the first error among them; commands of
    one caller run in order, before those of the callers queued after it.
    """

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._queued: list[tuple[Commands, asyncio.Future[list[Any]]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def run(self, commands: Commands) -> list[Any]:
        """Add ``commands`` to the next pipeline; their replies once it has run."""
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._queued.append((commands, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="webhooks:writes")
        return await future

    async def _flush(self) -> None:
        while self._queued:
            batch, self._queued = self._queued[:MAX_BATCH], self._queued[MAX_BATCH:]
            pipe = self._redis.pipeline(transaction=False)
            sizes = []
            for commands, _ in batch:
                before = len(pipe.command_stack)
                commands(pipe)
                sizes.append(len(pipe.command_stack) - before)
            try:
                replies = await pipe.execute(raise_on_error=False)
            except BaseException as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(_copy(exc))
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            start = 0
            for (_, future), size in zip(batch, sizes, strict=True):
                mine = replies[start : start + size]
                start += size
                if future.done():
                    continue
                error = next((r for r in mine if isinstance(r, Exception)), None)
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(mine)


def _copy(exc: BaseException) -> BaseException:
    """Each waiter its own exception object (tracebacks are per raise)."""
    if isinstance(exc, asyncio.CancelledError):
        return asyncio.CancelledError()
    return exc


class Batched:
    """Items of concurrent callers written together: one command per flush, not per item.

    ``write`` adds the commands for all the items of a flush to a pipeline (e.g. one
    ``XACK`` naming every entry). A caller's :meth:`add` returns once its item is written.
    """

    def __init__(self, redis: Redis, write: Callable[[Pipeline, list[Any]], None]) -> None:
        self._redis = redis
        self._write = write
        self._items: list[Any] = []
        self._waiting: list[asyncio.Future[None]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def add(self, item: Any) -> None:
        """Write ``item`` with the others of the next flush."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._items.append(item)
        self._waiting.append(future)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="webhooks:batched")
        await future

    async def _flush(self) -> None:
        while self._items:
            items, self._items = self._items[:MAX_BATCH], self._items[MAX_BATCH:]
            waiting, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
            pipe = self._redis.pipeline(transaction=False)
            self._write(pipe, items)
            try:
                await pipe.execute()
            except BaseException as exc:
                for future in waiting:
                    if not future.done():
                        future.set_exception(_copy(exc))
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for future in waiting:
                if not future.done():
                    future.set_result(None)
