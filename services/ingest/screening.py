"""Screening a publish request — decode, authorise, validate — without stalling the event loop.

A body of up to 8 MiB costs up to seconds of CPU to parse and validate. Done on the event
loop at once, that time is taken from every other request: a publisher posting refused
bodies in a loop took the others' publishes from 7 ms to over a second. So:

* the publisher's units are checked on each event's raw ``source`` before the full
  validation (:func:`foreign_sources`): a refused request costs its parse only;
* on the event loop, the cheapest place (no second process, no round trip): bodies up to
  :data:`INLINE_MAX` at once (a few milliseconds at most), and batches up to
  :data:`SLICED_MAX` — 1000 typical events are 0.4-0.7 MB — a slice at a time
  (:mod:`.slices`), one request of a publisher at a time, so that any other request
  waits a slice at most;
* but only while the publisher's refused requests have not used up its allowance of
  event-loop time (:mod:`.refusals`): a flood of refused requests would keep the process
  busy all the time, and a busy process is scheduled behind the machine's other work;
* everything else — an allowance used up, a larger body or event, irregular JSON — is
  screened whole in a worker process (a small pool, started on first use, at a lower CPU
  priority than the API), at most :data:`PER_PUBLISHER` requests of a publisher at a time;
  the event loop only hands over the bytes;
* either way the result is :class:`Screened` events: what publishing needs (type,
  source, id, subject, the canonical text), not the models — a worker's models would
  cost more to send back, or to rebuild, than to validate.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import select
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from schemas.events import CloudEvent
from schemas.topology import Topology
from schemas.vocabulary import EventType
from services.core.bus import Encoded, Unavailable
from services.core.collector import tune_collector
from services.core.keyring import Registry
from services.core.problems import Problem
from services.ingest.content_modes import decode, locate, maybe_batch
from services.ingest.intake import MAX_BATCH, Rejected, foreign_units, validate_batch
from services.ingest.refusals import Allowance
from services.ingest.signatures import refused_signatures
from services.ingest.slices import Irregular, OverBudget, Slices, parse_array, validate_array

MAX_BODY = 8 * 1024 * 1024
"""Bytes of a request body (or an ingress entry) at most."""
INLINE_MAX = 16 * 1024
"""Bodies up to this many bytes are screened at once on the event loop (bounded: a few ms)."""
SLICED_MAX = 2 * 1024 * 1024
"""Batches up to this many bytes are screened on the event loop a slice at a time."""
MAX_ERRORS = 2000
"""Errors listed in a 422 at most (a body of unknown keys would otherwise list millions)."""
WORKERS = 2
"""Worker processes of the pool (each ~60 MB)."""
PER_PUBLISHER = WORKERS
"""Requests of one publisher in the pool at once: its concurrent senders use every worker,
and a flood of one queues behind itself once the pool is full."""
NO_KEYS = Registry()
"""No publisher signs: nothing to check."""
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
    headers: Mapping[str, str],
    body: bytes,
    name: str,
    units: Collection[str],
    topology: Topology,
    registry: Registry = NO_KEYS,
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
        raise forbidden(name, foreign)
    try:
        events, batch = validate_batch(decoded.body, topology)
    except Rejected as exc:
        raise invalid(exc, decoded.binary) from None
    late = foreign_units(events, units)  # the canonical sources, should they ever differ
    if late:
        raise forbidden(name, late)
    screened = [Screened.of(event) for event in events]
    return signed(screened, registry, name, batch, decoded.binary)


def signed(
    events: list[Screened], registry: Registry, name: str, batch: bool, binary: bool = False
) -> list[Screened]:
    """``events`` when each signature holds (or may be absent); else the 422 naming each."""
    refused = refused_signatures([e.payload for e in events], registry, name, batch)
    if refused:
        raise invalid(Rejected(refused), binary)
    return events


async def screen_in_slices(
    body: bytes,
    name: str,
    units: Collection[str],
    topology: Topology,
    slices: Slices,
    registry: Registry = NO_KEYS,
) -> list[Screened]:
    """:func:`screen` of a batch body (``maybe_batch``), a slice at a time (:mod:`.slices`);
    :class:`Irregular` if the body is not a plain array of small events."""
    raw = await parse_array(body, slices)
    foreign = foreign_sources(raw, units, topology)
    if foreign:
        raise forbidden(name, foreign)
    try:
        events = await validate_array(raw, topology, slices, Screened.of, MAX_ERRORS)
    except Rejected as exc:
        raise invalid(exc) from None
    late = sorted({e.unit for e in events if e.unit and e.unit not in units})
    if late:
        raise forbidden(name, late)
    return signed(events, registry, name, True)


def forbidden(name: str, foreign: Sequence[str]) -> Problem:
    """The 403 of a request with events for ``foreign`` units (the first ten named)."""
    shown = ", ".join(foreign[:10]) + (
        f" and {len(foreign) - 10} more" if len(foreign) > 10 else ""
    )
    return Problem(403, "Forbidden", f"{name} may not publish for {shown}")


def invalid(exc: Rejected, binary: bool = False) -> Problem:
    """The 422 of a refused request: its errors located, at most :data:`MAX_ERRORS` of them."""
    errors = [locate(r, binary).to_dict() for r in exc.rejections[:MAX_ERRORS]]
    detail = str(exc)
    if exc.count > MAX_ERRORS:
        detail = f"{exc.count} errors, the first {MAX_ERRORS} listed: {detail}"
    return Problem(422, "Invalid event", detail, errors=errors)


# In the worker processes: the topology and the key registry, set once when each starts.
_topology: Topology | None = None
_registry: Registry = NO_KEYS


def _start_worker(topology: Topology, api: int, registry: Registry = NO_KEYS) -> None:
    global _topology, _registry
    _topology, _registry = topology, registry
    _lower_priority()  # inherited already, unless another thread started the fork server
    tune_collector()  # as the API's process: with Python's defaults, a batch cost ~1.6x the CPU
    threading.Thread(target=_exit_with, args=(api,), name="api-watch", daemon=True).start()


def _exit_with(api: int) -> None:
    """End this worker when the API's process ``api`` ends, however it ends (SIGKILL, the OOM
    killer): a pool's worker waits on a queue it holds both ends of, and would never notice;
    and the fork server lives as long as any worker."""
    try:
        watched = os.pidfd_open(api)  # readable once the process has ended (Linux 5.3)
    except OSError:  # gone already, or no pidfd: look every second
        while _alive(api):
            time.sleep(1)
    else:
        select.select([watched], [], [])
    os._exit(0)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's (its id was taken again)
        return False
    return True


def _lower_priority() -> None:
    """This thread (on Linux a thread has its own priority) at :data:`NICENESS` at least: the
    API's own requests come first when the cores are busy, and the processes this thread
    starts inherit it."""
    os.setpriority(os.PRIO_PROCESS, 0, max(NICENESS, os.getpriority(os.PRIO_PROCESS, 0)))


def _screen_in_worker(
    headers: dict[str, str], body: bytes, name: str, units: tuple[str, ...]
) -> tuple[Any, ...]:
    """:func:`screen` in a worker: ``("ok", texts)`` or ``("problem", status, title, detail,
    errors)`` — plain values, cheap to send back (a pydantic model costs more to unpickle
    than to validate)."""
    assert _topology is not None
    try:
        events = screen(headers, body, name, units, _topology, _registry)
    except Problem as problem:
        return ("problem", problem.status, problem.title, problem.detail, problem.errors)
    return ("ok", [(e.type.value, e.source, e.id, e.payload, e.subject) for e in events])


class Screener:
    """Screens publish requests (:func:`screen`): on the event loop (at once when small, a
    slice at a time when a batch) while the publisher's refused requests have not used up
    its :class:`~.refusals.Allowance`, in a worker process otherwise."""

    def __init__(
        self,
        topology: Topology,
        workers: int = WORKERS,
        allowance: Callable[[], Allowance] = Allowance,
        registry: Registry = NO_KEYS,
    ) -> None:
        """``allowance`` makes each publisher's :class:`~.refusals.Allowance`; ``registry``:
        the publishers' signing keys, checked before an event is accepted."""
        self.topology, self._workers, self._allowance = topology, workers, allowance
        self.registry = registry
        self._pool: ProcessPoolExecutor | None = None
        self._turns: dict[str, asyncio.Lock] = {}
        self._allowances: dict[str, Allowance] = {}
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._starting = asyncio.Lock()
        self.on_loop = self.in_workers = 0
        """Requests screened so far on the event loop, and in a worker process."""

    async def events(
        self, headers: Mapping[str, str], body: bytes, name: str, units: Sequence[str]
    ) -> list[Screened]:
        """The request's valid events, or :class:`Problem`."""
        allowance = self._allowances.get(name)
        if allowance is None:
            allowance = self._allowances[name] = self._allowance()
        if len(body) <= INLINE_MAX and allowance.open():
            self.on_loop += 1
            started = time.perf_counter()
            try:
                return screen(headers, body, name, units, self.topology, self.registry)
            except Problem:
                allowance.charge(time.perf_counter() - started)
                raise
        if INLINE_MAX < len(body) <= SLICED_MAX and allowance.open() and maybe_batch(headers):
            async with self._turns.setdefault(name, asyncio.Lock()):  # one after the other
                if allowance.open():  # (again: it may have run out while this one waited)
                    self.on_loop += 1
                    slices = Slices(refusal=allowance.left)
                    try:
                        return await screen_in_slices(
                            body, name, units, self.topology, slices, self.registry
                        )
                    except Problem:
                        allowance.charge(slices.used())
                        raise
                    except (Irregular, OverBudget):  # screened whole in a worker: the same answer
                        allowance.charge(slices.used())
        return await self._in_worker(headers, body, name, units)

    async def _in_worker(
        self, headers: Mapping[str, str], body: bytes, name: str, units: Sequence[str]
    ) -> list[Screened]:
        slot = self._slots.setdefault(name, asyncio.Semaphore(PER_PUBLISHER))
        self.in_workers += 1
        async with slot:  # a publisher's requests take at most PER_PUBLISHER workers
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
        # In a thread of its own at the workers' priority: the fork server and the workers it
        # starts inherit it from their first instruction, so that their start (importing the
        # whole product, ~1 s of CPU each) does not take the cores from the API either.
        with ThreadPoolExecutor(1, thread_name_prefix="screening-start") as starter:
            return starter.submit(self._new_pool).result()

    def _new_pool(self) -> ProcessPoolExecutor:
        _lower_priority()
        pool = ProcessPoolExecutor(
            self._workers,
            mp_context=multiprocessing.get_context("forkserver"),
            initializer=_start_worker,
            initargs=(self.topology, os.getpid(), self.registry),
        )
        for started in [pool.submit(os.getpid) for _ in range(self._workers)]:
            started.result()  # every worker up before the first request waits on one
        return pool

    def close(self) -> None:
        """Stop the workers (at shutdown)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
