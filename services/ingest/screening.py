"""Screening a publish request — decode, authorise, validate — without stalling the event loop.

A body of up to 8 MiB costs up to seconds of CPU to parse and validate (hundreds of
milliseconds for JSON alone; pydantic's errors for an object full of unknown keys,
far more). Done on the event loop, that time is taken from every other request: a
publisher posting refused bodies in a loop took the others' publishes from 7 ms to
over a second, and past redis-py's 5 s timeout to 503s. So:

* the publisher's units are checked on each event's raw ``source`` before the full
  validation (:func:`foreign_sources`): a refused request costs its parse only;
* small bodies (up to :data:`INLINE_MAX`) are screened inline: a few milliseconds at most;
* larger ones in a worker process (a small pool, started on first use, at a lower
  CPU priority than the API), at most :data:`PER_PUBLISHER` requests of a principal
  at a time, so that a principal's flood queues behind itself; the event loop only
  hands over the bytes;
* either way the result is :class:`Screened` events: what publishing needs (type,
  source, id, subject, the canonical text), not the models — a worker's models would
  cost more to send back, or to rebuild, than to validate. :meth:`Screened.event`
  parses one again where a model is wanted.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from schemas.events import CloudEvent
from schemas.topology import Topology
from schemas.vocabulary import EventType
from services.bus import Encoded, Unavailable
from services.ingest.content_modes import decode, locate
from services.ingest.intake import MAX_BATCH, Rejected, foreign_units, validate_batch
from services.problems import Problem

MAX_BODY = 8 * 1024 * 1024
"""Bytes of a request body (or an ingress entry) at most."""
INLINE_MAX = 16 * 1024
"""Bodies up to this many bytes are screened on the event loop (bounded: a few ms)."""
MAX_ERRORS = 2000
"""Errors listed in a 422 at most (a body of unknown keys would otherwise list millions)."""
WORKERS = 2
"""Worker processes of the pool (each ~60 MB)."""
PER_PUBLISHER = WORKERS
"""Large requests of one publisher in the pool at once: its concurrent senders use every
worker, and a flood of one queues behind itself once the pool is full."""
NICENESS = 10
"""The workers' CPU priority below the API's (``nice``): weight 110 against 1024."""


@dataclass(frozen=True, slots=True)
class Screened(Encoded):
    """An event found valid: what publishing needs of it, and its canonical text."""

    subject: str | None

    @property
    def unit(self) -> str | None:
        """The originating unit (``/units/<UNIT-ID>``), as :attr:`CloudEvent.unit`."""
        return self.source.removeprefix("/units/") if self.source.startswith("/units/") else None

    @classmethod
    def of(cls, event: CloudEvent) -> Screened:
        """``event`` encoded now."""
        return cls(event.type, event.source, event.id, event.to_json(), event.subject)

    def event(self) -> CloudEvent:
        """The model again (its text is canonical and valid: this only costs the parse)."""
        return CloudEvent.from_json(self.payload)


def foreign_sources(body: Any, units: Collection[str], topology: Topology) -> list[str]:
    """Units of the topology that the raw events' ``source`` names and that are not ``units``:
    a cheap envelope pass. Whatever else is wrong (a malformed source, an unknown unit) is
    left to the full validation, which names the field."""
    events = body if isinstance(body, list) else [body]
    foreign: set[str] = set()
    for event in events:
        source = event.get("source") if isinstance(event, dict) else None
        if isinstance(source, str) and source.startswith("/units/"):
            unit = source.removeprefix("/units/")
            if unit not in units and unit in topology:
                foreign.add(unit)
    return sorted(foreign)


def screen(
    headers: Mapping[str, str], body: bytes, name: str, units: Collection[str], topology: Topology
) -> list[Screened]:
    """The request's canonical events, or :class:`Problem` (400, 403, 413, 415, 422)."""
    try:
        decoded = decode(headers, body)
    except Rejected as exc:
        raise invalid(exc) from None
    if isinstance(decoded.body, list) and len(decoded.body) > MAX_BATCH:
        raise Problem(413, "Batch too large", f"at most {MAX_BATCH} events per request")
    foreign = foreign_sources(decoded.body, units, topology)
    if foreign:
        shown = ", ".join(foreign[:10]) + (
            f" and {len(foreign) - 10} more" if len(foreign) > 10 else ""
        )
        raise Problem(403, "Forbidden", f"{name} may not publish for {shown}")
    try:
        events, _ = validate_batch(decoded.body, topology)
    except Rejected as exc:
        raise invalid(exc, decoded.binary) from None
    late = foreign_units(events, units)  # the canonical sources, should they ever differ
    if late:
        raise Problem(403, "Forbidden", f"{name} may not publish for {', '.join(late)}")
    return [Screened.of(event) for event in events]


def invalid(exc: Rejected, binary: bool = False) -> Problem:
    """The 422 of a refused request: its errors located, at most :data:`MAX_ERRORS` of them."""
    errors = [locate(r, binary).to_dict() for r in exc.rejections[:MAX_ERRORS]]
    detail = str(exc)
    if len(exc.rejections) > MAX_ERRORS:
        detail = f"{len(exc.rejections)} errors, the first {MAX_ERRORS} listed: {detail}"
    return Problem(422, "Invalid event", detail, errors=errors)


# In the worker processes: the topology, set once when each starts.
_topology: Topology | None = None


def _start_worker(topology: Topology) -> None:
    global _topology
    _topology = topology
    os.nice(NICENESS)  # the API's own requests come first when the cores are busy


def _screen_in_worker(
    headers: dict[str, str], body: bytes, name: str, units: tuple[str, ...]
) -> tuple[Any, ...]:
    """:func:`screen` in a worker: ``("ok", texts)`` or ``("problem", status, title, detail,
    errors)`` — plain values, cheap to send back (a pydantic model costs more to unpickle
    than to validate)."""
    assert _topology is not None
    try:
        events = screen(headers, body, name, units, _topology)
    except Problem as problem:
        return ("problem", problem.status, problem.title, problem.detail, problem.errors)
    return ("ok", [(e.type.value, e.source, e.id, e.payload, e.subject) for e in events])


class Screener:
    """Screens publish requests (:func:`screen`): inline when small, else in a worker process."""

    def __init__(self, topology: Topology, workers: int = WORKERS) -> None:
        self.topology, self._workers = topology, workers
        self._pool: ProcessPoolExecutor | None = None
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._starting = asyncio.Lock()

    async def events(
        self, headers: Mapping[str, str], body: bytes, name: str, units: Sequence[str]
    ) -> list[Screened]:
        """The request's valid events, or :class:`Problem`."""
        if len(body) <= INLINE_MAX:
            return screen(headers, body, name, units, self.topology)
        slot = self._slots.setdefault(name, asyncio.Semaphore(PER_PUBLISHER))
        async with slot:  # a publisher's large requests take at most PER_PUBLISHER workers
            outcome = await self._run(dict(headers), body, name, tuple(units))
        if outcome[0] == "problem":
            _, status, title, detail, errors = outcome
            raise Problem(status, title, detail, errors=errors)
        return [Screened(EventType(kind), *rest) for kind, *rest in outcome[1]]

    async def _run(self, *args: Any) -> tuple[Any, ...]:
        async with self._starting:
            if self._pool is None:  # started in a thread: that takes a while, once
                self._pool = await asyncio.to_thread(self._start_pool)
        pool = self._pool
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, _screen_in_worker, *args)
        except BrokenProcessPool as exc:  # a worker died (OOM killer): start afresh next time
            pool.shutdown(wait=False, cancel_futures=True)
            if self._pool is pool:
                self._pool = None
            raise Unavailable(f"screening worker lost: {exc}") from exc

    def _start_pool(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(
            self._workers,
            mp_context=multiprocessing.get_context("forkserver"),
            initializer=_start_worker,
            initargs=(self.topology,),
        )
        for started in [pool.submit(os.getpid) for _ in range(self._workers)]:
            started.result()  # every worker up before the first request waits on one
        return pool

    def close(self) -> None:
        """Stop the workers (at shutdown)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
