"""How much of the event loop a publisher's refused requests may take.

Screening a request on the event loop costs the least CPU (no second process, no round
trip), and screened in slices it never holds the loop for long. But a publisher posting
requests that are refused — 403, 422, malformed — one after the other would keep the
process busy all the time, and a process that is always busy is scheduled behind the
machine's other work: the others' requests, short as they are, then wait for the CPU
(another publisher's p50 went from 4-6 to 30-68 ms under a flood of 2 MiB batches refused
with 403 and 422, screened in 2 ms slices).

So each publisher has an :class:`Allowance` of event-loop time for requests that end
refused: :data:`RATE` seconds per second, saved up to :data:`BURST`. A refused request
is charged what it took, and one found refused part way stops once it has used what was
left (:class:`~.slices.Slices`); while a publisher's allowance is spent, its requests are
screened in the worker processes (at a lower CPU priority) until it has grown back.
Accepted requests cost nothing from it: an honest publisher, whose batches are accepted
with the odd one refused, never runs out.
"""

from __future__ import annotations

import time
from collections.abc import Callable

RATE = 0.05
"""Seconds of event-loop time per second that a publisher's refused requests may take."""
BURST = 0.1
"""Seconds of event-loop time a publisher may save up for refused requests: a refused batch
of 1000 events takes ~70 ms."""


class Allowance:
    """A publisher's event-loop time for refused requests (a token bucket of seconds)."""

    def __init__(
        self,
        rate: float = RATE,
        burst: float = BURST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate, self._burst, self._clock = rate, burst, clock
        self._left, self._at = burst, clock()

    @property
    def left(self) -> float:
        """Seconds left now (negative once a refused request took more than was left)."""
        now = self._clock()
        self._left = min(self._burst, self._left + (now - self._at) * self._rate)
        self._at = now
        return self._left

    def open(self) -> bool:
        """Whether the publisher's next request may be screened on the event loop."""
        return self.left > 0

    def charge(self, seconds: float) -> None:
        """A request of the publisher was refused after ``seconds`` on the event loop."""
        self._left = self.left - seconds
