"""Running the HTTP API in-process next to the services, until told to stop."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from services.entrypoints.http_limits import DEFAULT_LIMITS, HttpLimits
from services.entrypoints.http_tls import TlsOptions, peer_certificate_protocol

GRACEFUL_SHUTDOWN = 10
"""Seconds requests in flight may take to finish when the server stops (then cancelled)."""


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the process's owner decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ApiServer:
    """uvicorn on ``host:port`` as an asyncio task (port 0 picks a free one), with ``limits``."""

    def __init__(
        self,
        app: FastAPI,
        host: str,
        port: int,
        limits: HttpLimits = DEFAULT_LIMITS,
        tls: TlsOptions | None = None,
    ) -> None:
        options = limits.uvicorn_options()
        if tls is not None:  # HTTPS, and each request learns its client's certificate
            options |= tls.uvicorn_options() | {"http": peer_certificate_protocol(options["http"])}
        self._scheme = "https" if tls is not None else "http"
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
            **options,
        )
        self._server = _QuietServer(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self, timeout: float = 10.0) -> str:
        """Start serving; return the base URL once the socket listens."""
        self._task = asyncio.create_task(self._server.serve())
        async with asyncio.timeout(timeout):
            while not self._server.started:
                if self._task.done():
                    self._task.result()  # raises the start-up error
                    raise RuntimeError("the HTTP server stopped during start-up")
                await asyncio.sleep(0.01)
        sock = self._server.servers[0].sockets[0].getsockname()
        return f"{self._scheme}://{sock[0]}:{sock[1]}"

    async def stop(self) -> None:
        """Finish in-flight requests and close."""
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def wait_for_signal() -> None:
    """Return on SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
