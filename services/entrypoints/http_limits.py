"""How long and how many: the HTTP server's limits against slow or numerous clients.

uvicorn closes an *idle* keep-alive connection (``timeout_keep_alive``) and can
answer 503 beyond a number of connections (``limit_concurrency``), but it has no
deadline for a request that is being sent: any byte received stops its keep-alive
timer, and h11 only bounds the size of a request head. 50 half-sent requests
stayed open for 40 s, and enough of them exhausted the process's file
descriptors. :func:`guarded_protocol` adds the deadlines — the request line and
headers within ``header_timeout`` of the connection opening (or of the previous
response ending), the body within ``body_timeout`` of the headers — and closes
a connection arriving while ``max_connections`` are open, so that the process
always keeps descriptors for Redis and the database.

These bound what one process holds; fairness between clients (connections and
requests per client, slow-client buffering) is the reverse proxy's job in front
(docs/http-api.md, "Running behind a reverse proxy").
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from services.core.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """The limits of one HTTP server (seconds for times)."""

    header_timeout: float = 10.0
    body_timeout: float = 60.0
    keep_alive: float = 5.0
    max_connections: int = 500

    @classmethod
    def of(cls, settings: Settings) -> HttpLimits:
        """The limits configured by ``LIAISON_HTTP_*``."""
        return cls(
            header_timeout=settings.http_header_timeout.total_seconds(),
            body_timeout=settings.http_body_timeout.total_seconds(),
            keep_alive=settings.http_keep_alive.total_seconds(),
            max_connections=settings.http_max_connections,
        )

    def uvicorn_options(self) -> dict[str, Any]:
        """``uvicorn.Config`` keyword arguments for these limits."""
        return {
            "http": guarded_protocol(self),
            "timeout_keep_alive": self.keep_alive,
            "limit_concurrency": self.max_connections,
        }


DEFAULT_LIMITS = HttpLimits()


def guarded_protocol(limits: HttpLimits) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol with request deadlines and a connection cap."""

    class Guarded(H11Protocol):
        _timer: asyncio.TimerHandle | None = None
        _phase: str | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > limits.max_connections:
                log.warning("closing a connection: %d are open", limits.max_connections)
                transport.close()
                return
            self._watch()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._watch()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._watch()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _watch(self) -> None:
            """Arm the deadline of what the client is sending now: a head, a body or nothing."""
            state = self.conn.their_state
            if self.transport.is_closing():
                phase = None
            elif state is h11.IDLE:
                phase = "head"
            elif state is h11.SEND_BODY:
                phase = "body"
            else:  # the request is in; the response is ours to send, however long it takes
                phase = None
            if phase == self._phase:
                return
            self._disarm()
            if phase is not None:
                delay = limits.header_timeout if phase == "head" else limits.body_timeout
                self._phase = phase
                self._timer = self.loop.call_later(delay, self._expire, phase, delay)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
            self._timer, self._phase = None, None

        def _expire(self, phase: str, delay: float) -> None:
            self._timer, self._phase = None, None
            if not self.transport.is_closing():
                log.info("closing a connection: request %s not sent within %gs", phase, delay)
                self.transport.close()

    return Guarded
