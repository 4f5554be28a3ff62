"""Whether the ledger's database takes writes now: the ledger's part of readiness.

A stopped PostgreSQL fails writes at once; a locked SQLite makes them wait
(up to the busy timeout) — so readiness looks at both the last outcome and
how long the write in flight has been waiting.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from services.core.bus import Unavailable

STALL_AFTER = 2.0
"""Seconds a write may wait for the database before the ledger reports itself not ready."""


class WriteHealth:
    """The outcome of the ledger's writes, as they happen."""

    def __init__(self, stall_after: float = STALL_AFTER) -> None:
        self.stall_after = stall_after
        self.failing = False
        self._since: float | None = None

    @asynccontextmanager
    async def watch(self) -> AsyncIterator[None]:
        """Around one write: failing after an outage, healthy again after a success."""
        self._since = time.monotonic()
        try:
            yield
        except Unavailable:
            self.failing = True
            raise
        else:
            self.failing = False
        finally:
            self._since = None

    @property
    def stalled(self) -> bool:
        """A write has been waiting longer than ``stall_after`` (a lock, a hung server)."""
        return self._since is not None and time.monotonic() - self._since > self.stall_after

    @property
    def ok(self) -> bool:
        """The last write did not fail for an outage and none is stuck."""
        return not self.failing and not self.stalled
