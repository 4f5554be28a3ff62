"""The webhook worker's HTTP/1.1 client: keep-alive connections per endpoint origin.

Why not httpx for every POST: profiled at 1.2-1.6 ms of CPU per request on this
machine (its URL, header and auth models, the anyio layers, a new connection per
unanswered body), against ~40 µs for one write and one parse on a kept-alive
connection. A webhook POST needs little of HTTP: a fixed request, a status line,
a few headers and a body to skip. This module does exactly that:

* one pool of kept-alive connections per origin (scheme, host, port), reused
  last-in first-out and closed after :data:`IDLE_TIMEOUT` unused (below common
  servers' keep-alive of 5 s, so we close first);
* every response body is read, to at most :data:`MAX_BODY` bytes (longer: the
  connection is closed instead of reused), so the connection goes back to the pool;
* bounded response heads (:data:`MAX_HEAD`); ``Content-Length``, ``chunked`` and
  close-delimited bodies; ``1xx`` skipped; ``Connection: close`` honoured;
* a request on a reused connection the server closed meanwhile (no byte of an
  answer) is sent once more on a new connection;
* TLS with the system's trust store (and certifi's, when installed), hostname
  checked; ``user:pass@`` in the URL becomes Basic authentication, as httpx did.

Endpoints that an ``HTTP(S)_PROXY`` of the environment applies to are sent
through httpx (:class:`services.notifier.webhooks.WebhookWorker` decides), as before.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import time
from collections import deque
from dataclasses import dataclass
from typing import cast
from urllib.parse import unquote

import httpx

MAX_HEAD = 16 * 1024
"""Bytes of status line and headers accepted in one answer."""
MAX_BODY = 64 * 1024
"""Bytes of an answer's body read (and discarded); a longer one closes the connection."""
IDLE_TIMEOUT = 4.0
"""Seconds a connection is kept unused before it is closed."""
SWEEP_EVERY = 0.25
"""Seconds between checks of the requests' deadlines (one timer for all, not one each)."""


class ProtocolError(Exception):
    """The endpoint's answer is not HTTP/1.1 we can read (the connection is closed)."""


class ConnectError(ConnectionError):
    """No connection could be made (named as httpx named it: outcomes and docs show it)."""


class Disconnected(ConnectionError):
    """The connection closed before a complete answer."""

    def __init__(self, message: str, *, answered: bool) -> None:
        super().__init__(message)
        self.answered = answered
        """Some of an answer had arrived (the request was certainly received)."""


@dataclass(frozen=True, slots=True)
class Target:
    """An endpoint's URL, parsed once: where to connect and the request's fixed head."""

    scheme: str
    host: str
    port: int
    head: bytes
    """``POST <target> HTTP/1.1`` and the headers that never change, each line ending CRLF."""

    @property
    def origin(self) -> tuple[str, str, int]:
        """What a pool is kept per."""
        return self.scheme, self.host, self.port


def parse_target(url: str, user_agent: str, content_type: str) -> Target:
    """Parse ``url`` once (httpx's parser: the same URLs as before); ValueError if unusable."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ValueError(str(exc)) from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"not an http(s) URL with a host: {parsed.scheme!r}")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    host = parsed.raw_host.decode("ascii")
    authority = f"[{host}]" if ":" in host else host
    if parsed.port is not None:
        authority += f":{port}"
    target = parsed.raw_path.decode("ascii") or "/"
    lines = [
        f"POST {target} HTTP/1.1",
        f"host: {authority}",
        f"user-agent: {user_agent}",
        f"content-type: {content_type}",
        "accept: */*",
    ]
    if parsed.userinfo:
        user, _, password = parsed.userinfo.decode("ascii").partition(":")
        pair = f"{unquote(user)}:{unquote(password)}".encode()
        lines.append(f"authorization: Basic {base64.b64encode(pair).decode('ascii')}")
    head = "".join(line + "\r\n" for line in lines)
    if any(c in head[:-2].replace("\r\n", "") for c in "\r\n\0"):
        raise ValueError("control characters in the URL")
    return Target(parsed.scheme, host, port, head.encode("ascii"))


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: one request at a time, its answer parsed as it arrives."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.used = False
        self._buf = bytearray()
        self._waiter: asyncio.Future[tuple[int, str | None]] | None = None
        self._status = 0
        self._retry_after: str | None = None
        self._keep = True
        self._body_left = -1  # bytes of a Content-Length body still to skip; -1: in the head
        self._chunked = False
        self._to_close = False  # close-delimited body: the answer is complete at the head
        self._chunked_read = 0  # bytes of a chunked body so far (bounded like any body)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            answered = bool(self._buf) or self._status != 0
            self._waiter.set_exception(
                Disconnected("the endpoint closed the connection", answered=answered)
            )

    def send(self, data: bytes) -> asyncio.Future[tuple[int, str | None]]:
        """Write one request; the future is its (status, Retry-After) once the answer is read."""
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self._status, self._retry_after, self._keep = 0, None, True
        self._body_left, self._chunked, self._to_close = -1, False, False
        self._chunked_read = 0
        self.used = True
        self.transport.write(data)
        return self._waiter

    def expire(self) -> None:
        """The request's deadline passed: fail it and close."""
        self._fail(TimeoutError())

    def close(self) -> None:
        """Close now (an unread answer, a timeout, an error)."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    @property
    def reusable(self) -> bool:
        """Idle, open, and the last answer allowed another request."""
        return not self.closed and self._keep and self._waiter is None

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # bytes nobody asked for: the connection is in no known state
            self.close()
            return
        self._buf += data
        try:
            self._parse()
        except ProtocolError as exc:
            self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        self.close()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)

    def _parse(self) -> None:
        while self._waiter is not None:
            if self._body_left < 0 and not self._chunked:
                if not self._head():
                    return
                continue
            if self._chunked:
                if not self._chunk():
                    return
                continue
            take = min(self._body_left, len(self._buf))
            del self._buf[:take]
            self._body_left -= take
            if self._body_left:
                return
            self._complete()

    def _head(self) -> bool:
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > MAX_HEAD:
                raise ProtocolError("response head too large")
            return False
        if end > MAX_HEAD:
            raise ProtocolError("response head too large")
        lines = bytes(self._buf[:end]).split(b"\r\n")
        del self._buf[: end + 4]
        status_line = lines[0].split(b" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/1."):
            raise ProtocolError("not an HTTP/1.x answer")
        try:
            status = int(status_line[1])
        except ValueError:
            raise ProtocolError("no status code") from None
        if not 100 <= status <= 599:
            raise ProtocolError("no status code")
        length, chunked, keep = -1, False, status_line[0] != b"HTTP/1.0"
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise ProtocolError("a malformed header")
            name, value = name.strip().lower(), value.strip()
            if name == b"content-length":
                if not value.isdigit() or (length >= 0 and int(value) != length):
                    raise ProtocolError("a malformed Content-Length")
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = value.lower().endswith(b"chunked")
            elif name == b"connection":
                tokens = value.lower()
                keep = b"close" not in tokens and (keep or b"keep-alive" in tokens)
            elif name == b"retry-after":
                self._retry_after = value.decode("latin-1")
        if 100 <= status <= 199:  # interim (e.g. 100 Continue): the real answer follows
            self._retry_after = None
            return True
        self._status, self._keep = status, keep
        if status in (204, 304):
            length, chunked = 0, False
        if chunked:
            self._chunked = True
        elif length > MAX_BODY:
            self._keep = False  # not worth reading: the status is all we need
            self._complete()
        elif length >= 0:
            self._body_left = length
        else:  # delimited by the close: nothing to reuse
            self._keep = False
            self._complete()
        return True

    def _chunk(self) -> bool:
        end = self._buf.find(b"\r\n")
        if end < 0:
            if len(self._buf) > MAX_HEAD:
                raise ProtocolError("a chunk header too large")
            return False
        size_text = bytes(self._buf[:end]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ProtocolError("a malformed chunk size") from None
        if size == 0:  # trailers, then the empty line
            done = self._buf.find(b"\r\n\r\n", end)
            if bytes(self._buf[end : end + 4]) == b"\r\n\r\n":
                done = end
            if done < 0:
                return False
            del self._buf[: done + 4]
            self._chunked = False
            self._complete()
            return True
        self._chunked_read += size
        if self._chunked_read > MAX_BODY:  # many small chunks count too
            self._keep = False
            self._chunked = False
            self._complete()
            return True
        if len(self._buf) < end + 2 + size + 2:
            return False
        del self._buf[: end + 2 + size + 2]
        return True

    def _complete(self) -> None:
        waiter, self._waiter = self._waiter, None
        self._body_left = -1
        if self._buf:  # more than the answer: not a connection to send on again
            self._keep = False
            self._buf.clear()
        if not self._keep:
            self.close()
        if waiter is not None and not waiter.done():
            waiter.set_result((self._status, self._retry_after))


class _Pool:
    """Kept-alive connections of one origin, the most recently used first."""

    def __init__(self, target: Target, ssl_context: ssl.SSLContext | None) -> None:
        self._target = target
        self._ssl = ssl_context
        self._idle: deque[_Connection] = deque()

    async def connect(self, timeout: float) -> _Connection:
        loop = asyncio.get_running_loop()
        target = self._target
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    _Connection,
                    target.host,
                    target.port,
                    ssl=self._ssl,
                    server_hostname=target.host if self._ssl is not None else None,
                )
        except ssl.SSLError as exc:
            raise ConnectError(f"TLS: {exc.reason or exc}") from None
        except OSError as exc:
            raise ConnectError(exc.strerror or str(exc)) from None
        return conn

    def take(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if conn.reusable and now - conn.idle_since < IDLE_TIMEOUT:
                return conn
            conn.close()
        return None

    def give_back(self, conn: _Connection) -> None:
        if conn.reusable:
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


class KeepAliveClient:
    """POSTs over kept-alive connections, one pool per origin."""

    def __init__(self, *, connect_timeout: float) -> None:
        self._connect_timeout = connect_timeout
        self._pools: dict[tuple[str, str, int], _Pool] = {}
        self._ssl: ssl.SSLContext | None = None
        self._deadlines: dict[_Connection, float] = {}
        self._sweeper: asyncio.Task[None] | None = None

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            context = ssl.create_default_context()
            try:
                import certifi  # httpx's trust store, kept for endpoints that relied on it
            except ImportError:  # pragma: no cover - certifi comes with httpx
                pass
            else:
                context.load_verify_locations(certifi.where())
            self._ssl = context
        return self._ssl

    def _pool(self, target: Target) -> _Pool:
        pool = self._pools.get(target.origin)
        if pool is None:
            context = self._context() if target.scheme == "https" else None
            pool = self._pools[target.origin] = _Pool(target, context)
        return pool

    async def post(
        self, target: Target, headers: bytes, body: bytes, timeout: float
    ) -> tuple[int, str | None]:
        """POST ``body`` with ``headers`` (CRLF-terminated lines); (status, Retry-After).

        Raises :class:`OSError` (connecting, :class:`Disconnected`), :class:`ProtocolError`
        or :class:`TimeoutError` (no answer within ``timeout`` seconds, give or take
        :data:`SWEEP_EVERY`: one sweeping task checks every request's deadline, cheaper than
        a timer per request).
        """
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.create_task(self._sweep(), name="webhooks:deadlines")
        deadline = time.monotonic() + timeout
        pool = self._pool(target)
        request = b"%s%scontent-length: %d\r\n\r\n%s" % (target.head, headers, len(body), body)
        conn = pool.take()
        if conn is not None:
            try:
                return await self._exchange(pool, conn, request, deadline)
            except Disconnected as exc:
                if exc.answered:
                    raise
                # The server closed the idle connection as we reused it: once more, anew.
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        conn = await pool.connect(min(self._connect_timeout, left))
        return await self._exchange(pool, conn, request, deadline)

    async def _exchange(
        self, pool: _Pool, conn: _Connection, request: bytes, deadline: float
    ) -> tuple[int, str | None]:
        self._deadlines[conn] = deadline
        try:
            answer = await conn.send(request)
        except BaseException:
            conn.close()  # cancelled or failed mid-answer: the connection is in no known state
            raise
        finally:
            self._deadlines.pop(conn, None)
        pool.give_back(conn)
        return answer

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY)
            now = time.monotonic()
            for conn in [c for c, at in self._deadlines.items() if at <= now]:
                self._deadlines.pop(conn, None)
                conn.expire()

    def close(self) -> None:
        """Close every idle connection."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
