"""Server-Sent Events for an officer's screen: a unit's inbox as it changes.

Each event carries the feed entry id as its SSE ``id``, so a browser that
reconnects with ``Last-Event-ID`` resumes exactly where it stopped (within
the feed's retained window). The payload is the delivery as the inbox shows
it now — the unit's own view, never more.

**One reader per unit, not per screen.** A blocking ``XREAD`` holds a Redis
connection for as long as it waits; one per open stream let a single officer
with ~100 tabs take every connection the API and the background loops shared.
Here one task per unit with open streams reads the unit's feed (on its own
client, one connection per unit at most), renders each entry once and hands
the frame to every screen of the unit. A screen that joins late, or resumes
from ``Last-Event-ID``, first reads what it missed with short ``XRANGE``
calls (on the API's client), then takes the reader's frames: the reader's
position when the screen joined separates the two, so nothing is missed or
sent twice. A screen too slow to take its frames (:data:`BACKLOG`) is ended;
its browser reconnects with ``Last-Event-ID`` and catches up the same way.

Keep-alive comments are each screen's own (every ``heartbeat`` of silence), so
the reader may block far longer than the heartbeat; its client's read timeout
is set from that block (:func:`services.core.redis_client.blocking_timeout`).
Each principal may hold at most ``per_principal`` streams (:class:`TooManyStreams`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from schemas.alerts import AlertRef
from services.core import streams
from services.core.bus import Unavailable
from services.notifier.inbox import RedisInbox

log = logging.getLogger(__name__)

READ_BLOCK = 20.0
"""Seconds a unit's reader waits on the server for new entries in one ``XREAD``."""
HEARTBEAT = 15.0
"""Seconds of silence after which a screen gets a keep-alive comment (the default)."""
PER_PRINCIPAL = 10
"""Streams one principal may hold open at once (the default)."""
BACKLOG = 1000
"""Frames a screen may have waiting before it is ended as too slow."""
PAGE = 100
RETRY_PAUSE = 1.0


class TooManyStreams(Exception):
    """The principal already holds as many streams as it may."""


class NotAnEntryId(ValueError):
    """A ``Last-Event-ID`` that no stream entry can have."""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _order(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _is_entry_id(text: str) -> bool:
    """``<ms>-<seq>``, each a 64-bit unsigned number, as the server accepts it."""
    ms, dash, seq = text.partition("-")
    if not (dash and ms.isdigit() and seq.isdigit() and ms.isascii() and seq.isascii()):
        return False
    return int(ms) < 2**64 and int(seq) < 2**64


class Screen:
    """One open stream: the frames its reader hands over, then its own catch-up and keep-alives."""

    def __init__(self, feeds: LiveFeeds, who: str, unit: str, after: str, joined_at: str) -> None:
        self.feeds, self.who, self.unit = feeds, who, unit
        self._after, self._joined_at = after, joined_at
        self._queue: deque[tuple[str, str]] = deque()
        self._wake = asyncio.Event()
        self._ended = False
        self._closed = False

    def push(self, entry_id: str, frame: str) -> None:
        """From the unit's reader: one rendered frame (ends the screen if it is too far behind)."""
        if len(self._queue) >= BACKLOG:
            log.warning(
                "live stream of %s for %s ended: %d frames behind",
                self.who,
                self.unit,
                len(self._queue),
            )
            self.end()
            return
        self._queue.append((entry_id, frame))
        self._wake.set()

    def end(self) -> None:
        """Stop the stream after what it already sent (the browser reconnects and resumes)."""
        self._ended = True
        self.feeds.leave(self)
        self._wake.set()

    def close(self) -> None:
        """The response is over: leave the reader and give the principal's slot back."""
        if not self._closed:
            self._closed = True
            self.feeds.release(self)

    async def frames(self) -> AsyncGenerator[str, None]:
        """SSE frames until the stream ends or the client goes away."""
        yield "retry: 3000\n\n"
        if _order(self._after) < _order(self._joined_at):
            try:
                async for entry_id, frame in self.feeds.catch_up(
                    self.unit, self._after, self._joined_at
                ):
                    self._after = entry_id
                    yield frame
            except (RedisError, OSError) as exc:  # the browser retries from what it received
                log.warning(
                    "live stream of %s for %s: cannot catch up (%s)", self.who, self.unit, exc
                )
                return
            self._after = self._joined_at
        while not self._ended:
            if not self._queue:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self.feeds.heartbeat)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                continue
            entry_id, frame = self._queue.popleft()
            if _order(entry_id) > _order(self._after):
                self._after = entry_id
                yield frame


class LiveFeeds:
    """The units' readers and their screens, for one process's HTTP API."""

    def __init__(
        self,
        redis: Redis,
        catch_up_redis: Redis,
        *,
        heartbeat: float = HEARTBEAT,
        per_principal: int = PER_PRINCIPAL,
        read_block: float = READ_BLOCK,
        inbox: Callable[[Redis], RedisInbox] = RedisInbox,
    ) -> None:
        """``redis`` serves the readers only (one connection per unit, read timeout above
        ``read_block``); ``catch_up_redis`` the short reads of joining screens; ``inbox``
        gives the inboxes through a client."""
        self._inbox, self._catch_up = inbox(redis), inbox(catch_up_redis)
        self._redis, self._catch_up_redis = redis, catch_up_redis
        self.heartbeat, self.per_principal = heartbeat, per_principal
        self._block_ms = int(read_block * 1000)
        self._screens: dict[str, set[Screen]] = {}
        self._positions: dict[str, str] = {}
        self._readers: dict[str, asyncio.Task[None]] = {}
        self._held: dict[str, int] = {}
        self._closing = False

    @property
    def readers(self) -> int:
        """How many units are being read (one reader each, however many screens)."""
        return len(self._readers)

    def held(self, who: str) -> int:
        """How many streams ``who`` has open."""
        return self._held.get(who, 0)

    async def open(self, who: str, unit: str, last_event_id: str | None) -> Screen:
        """A new screen of ``unit`` for ``who``, resuming after ``last_event_id`` if given
        (else from what is newest now); :class:`TooManyStreams` beyond ``per_principal``,
        :class:`NotAnEntryId` for an id out of the server's range."""
        if self._closing:
            raise Unavailable("the server is stopping")
        if last_event_id is not None and not _is_entry_id(last_event_id):
            raise NotAnEntryId(f"Last-Event-ID {last_event_id!r} is not a stream entry id")
        if self.held(who) >= self.per_principal:
            raise TooManyStreams(f"{who} already has {self.held(who)} live streams open")
        self._held[who] = self.held(who) + 1  # before any await: a burst cannot overshoot
        try:
            newest = await self._newest(unit)
        except BaseException:
            self._held[who] -= 1
            raise
        if unit not in self._readers:
            # Never from the client's Last-Event-ID: one far in the future would leave every
            # screen of the unit waiting for it.
            self._positions[unit] = newest
            self._readers[unit] = asyncio.create_task(self._read(unit), name=f"live:{unit}")
        screen = Screen(self, who, unit, last_event_id or newest, self._positions[unit])
        self._screens.setdefault(unit, set()).add(screen)
        return screen

    def leave(self, screen: Screen) -> None:
        """Stop handing frames to ``screen`` (its reader stops after its last screen left)."""
        self._screens.get(screen.unit, set()).discard(screen)

    def release(self, screen: Screen) -> None:
        """``screen`` is closed: it no longer counts against its principal."""
        self.leave(screen)
        self._held[screen.who] -= 1
        if not self._held[screen.who]:
            del self._held[screen.who]

    async def aclose(self) -> None:
        """End every screen and stop the readers: the process is stopping (browsers reconnect,
        with ``Last-Event-ID``, to another instance or once it is back)."""
        self._closing = True
        for screens in list(self._screens.values()):
            for screen in list(screens):
                screen.end()
        readers = list(self._readers.values())
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)

    async def _newest(self, unit: str) -> str:
        newest: Any = await self._catch_up_redis.xrevrange(streams.feed_key(unit), count=1)
        return _text(newest[0][0]) if newest else "0-0"

    async def catch_up(self, unit: str, after: str, until: str) -> AsyncIterator[tuple[str, str]]:
        """Frames of the entries after ``after`` up to ``until``, read in short pages."""
        start = f"({after}"
        while True:
            page: Any = await self._catch_up_redis.xrange(
                streams.feed_key(unit), min=start, max=until, count=PAGE
            )
            for raw_id, fields in page:
                entry_id = _text(raw_id)
                yield entry_id, await _frame(self._catch_up, unit, entry_id, fields)
                start = f"({entry_id}"
            if len(page) < PAGE:
                return

    async def _read(self, unit: str) -> None:
        """Read the unit's feed while it has screens; hand each entry's frame to all of them."""
        failing = False
        try:
            while self._screens.get(unit):
                position = self._positions[unit]
                try:
                    reply: Any = await self._redis.xread(
                        {streams.feed_key(unit): position}, count=PAGE, block=self._block_ms
                    )
                    for entry_id, fields in _entries(reply):
                        frame = await _frame(self._inbox, unit, entry_id, fields)
                        self._positions[unit] = entry_id
                        for screen in list(self._screens.get(unit, ())):
                            screen.push(entry_id, frame)
                except (RedisError, OSError) as exc:
                    if not failing:
                        log.warning("live feed of %s: cannot read (%s); retrying", unit, exc)
                    failing = True
                    await asyncio.sleep(RETRY_PAUSE)
                    continue
                if failing:
                    log.info("live feed of %s: reading again", unit)
                    failing = False
        finally:  # no await between the last check and this: a joining screen starts a new one
            del self._readers[unit]
            self._positions.pop(unit, None)


def _entries(reply: Any) -> list[tuple[str, dict[Any, Any]]]:
    # RESP2 (the clients' protocol here): [[stream, [(id, fields), ...]]]
    return [(_text(entry_id), fields) for entry_id, fields in reply[0][1]] if reply else []


async def _frame(inbox: RedisInbox, unit: str, entry_id: str, fields: dict[Any, Any]) -> str:
    kind = _text(fields[b"kind"])
    alert = AlertRef(_text(fields.get(b"alert_source", b"")), _text(fields[b"alert_id"]))
    if kind == "notice":
        doc: object = {"alert_id": alert.id, "notices": await inbox.notices(unit)}
    else:
        doc = await inbox.get(unit, alert)
    payload = json.dumps(
        {"kind": kind, "alert_id": alert.id, "alert_source": alert.origin, "delivery": doc}
    )
    return f"id: {entry_id}\nevent: {kind}\ndata: {payload}\n\n"
