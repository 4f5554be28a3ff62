"""A batch screened on the event loop a slice at a time: parsed one event at a time, then
validated one event at a time, the loop given back whenever a slice of :data:`SLICE`
seconds is used up.

The other requests of the process then wait at most a slice, or the cost of one event
of at most :data:`ELEMENT_MAX` characters, rather than a whole batch. What is not a
plain JSON array of such events — a malformed or irregular body, a larger event, more
than :data:`~services.ingest.intake.MAX_BATCH` of them — raises :class:`Irregular`: the
caller screens that body whole (in a worker process), where the exact answer (400, 413,
422) is found as for any other body. The parse here gives what ``json.loads`` gives, or
nothing.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from schemas.events import CloudEvent
from schemas.topology import Topology
from services.ingest.intake import MAX_BATCH, Rejected, Rejection, validate_event

SLICE = 0.002
"""Seconds of screening after which the event loop is given back to other requests."""
ELEMENT_MAX = 16 * 1024
"""Characters of one event of a batch screened on the event loop at most: the most that one
uninterruptible step (parsing and validating one event) may cost, a few milliseconds even
for the costliest JSON to validate (unknown attributes, ~0.5 µs a character)."""


T = TypeVar("T")


class Irregular(Exception):
    """The body is not a JSON array of at most MAX_BATCH events of ELEMENT_MAX characters."""


class OverBudget(Exception):
    """The request will be refused and has used up the event-loop time it was allowed."""


class Slices:
    """A time budget: :meth:`next` gives the event loop back once :data:`SLICE` is used up.

    ``refusal`` is the event-loop time the request may take once it is known to be
    refused (:meth:`refused`): past it, :meth:`next` raises :class:`OverBudget`.
    """

    def __init__(self, seconds: float = SLICE, refusal: float = math.inf) -> None:
        self._seconds, self._refusal = seconds, refusal
        self._started = time.perf_counter()
        self._before = 0.0  # seconds used by the slices before this one
        self._refused = False

    async def next(self) -> None:
        """Yield to the other tasks if this slice is used up (then start the next one)."""
        now = time.perf_counter()
        if self._refused and self._before + now - self._started > self._refusal:
            raise OverBudget
        if now - self._started >= self._seconds:
            self._before += now - self._started
            await asyncio.sleep(0)
            self._started = time.perf_counter()

    def refused(self) -> None:
        """The request will be refused, whatever follows: it may use no more than ``refusal``."""
        self._refused = True

    def used(self) -> float:
        """Seconds on the event loop so far (not counting the turns given to others)."""
        return self._before + time.perf_counter() - self._started


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_no_constant)  # NaN and Infinity are not JSON
_scan: Callable[[str, int], tuple[Any, int]] = vars(_DECODER)["scan_once"]
"""json's own scanner (C): one value from an index (an attribute missing from the stubs)."""
_SPACE = " \t\n\r"
_WHITESPACE = re.compile(r"[ \t\n\r]*")
"""What json's decoder skips between values (``json.decoder.WHITESPACE``)."""


def _skip(doc: str, at: int) -> int:
    """The index of the first character at or after ``at`` that is not JSON whitespace."""
    if doc[at : at + 1] not in _SPACE:  # the usual case, without the regular expression
        return at
    found = _WHITESPACE.match(doc, at)
    return found.end() if found else at


async def parse_array(body: bytes, slices: Slices) -> list[Any]:
    """The events of a JSON array body, parsed one at a time (equal to ``json.loads(body)``),
    or :class:`Irregular`."""
    try:  # as json.loads decodes bytes (UTF-8 with or without BOM, UTF-16, UTF-32)
        doc = body.decode(json.detect_encoding(body), "surrogatepass")
    except UnicodeDecodeError:
        raise Irregular from None
    at = _skip(doc, 0)
    if doc[at : at + 1] != "[":
        raise Irregular
    at = _skip(doc, at + 1)
    events: list[Any] = []
    if doc[at : at + 1] == "]":
        at += 1
    else:
        while True:
            try:
                event, end = _scan(doc, at)
            except (StopIteration, ValueError, RecursionError):  # JSONDecodeError included
                raise Irregular from None
            if end - at > ELEMENT_MAX or len(events) == MAX_BATCH:
                raise Irregular
            events.append(event)
            at = _skip(doc, end)
            if doc[at : at + 1] == "]":
                at += 1
                break
            if doc[at : at + 1] != ",":
                raise Irregular
            at = _skip(doc, at + 1)
            await slices.next()
    if _skip(doc, at) != len(doc):  # "Extra data"
        raise Irregular
    return events


async def validate_array(
    raw: Sequence[Any],
    topology: Topology,
    slices: Slices,
    keep: Callable[[CloudEvent], T],
    errors: int,
) -> list[T]:
    """:func:`~services.ingest.intake.validate_batch` of a list, a slice at a time: what
    ``keep`` makes of each valid event (its canonical text, say), or :class:`Rejected` with
    the first ``errors`` errors and the count of all."""
    if not raw:
        raise Rejected([Rejection(None, "(body)", "the batch is empty")])
    valid: list[T] = []
    rejections: list[Rejection] = []
    count = 0
    for index, item in enumerate(raw):
        try:
            event = validate_event(item, topology, index)
        except Rejected as exc:
            slices.refused()
            # Only the errors that will be shown are kept: a body of unknown keys makes
            # hundreds of thousands, each an object the collector would scan again and
            # again (pauses of 10-50 ms) while the batch is screened.
            rejections.extend(exc.rejections[: errors - len(rejections)])
            count += exc.count
        else:
            if not count:  # the text only matters if the batch may yet be accepted
                valid.append(keep(event))
        await slices.next()
    if count:
        raise Rejected(rejections, count)
    return valid
