"""``liaison up`` and ``liaison serve``: run until SIGINT/SIGTERM."""

from __future__ import annotations

import logging
from collections.abc import Collection

from rich.console import Console

from services.bootstrap import Runtime
from services.console.app import console_url
from services.core.collector import tune_collector
from services.core.settings import Settings
from services.entrypoints.http import create_app, create_health_app
from services.entrypoints.http_limits import HttpLimits
from services.entrypoints.http_tls import TlsOptions
from services.entrypoints.serve import ApiServer, wait_for_signal

log = logging.getLogger(__name__)


async def run_services(
    settings: Settings,
    services: Collection[str],
    console: Console,
    *,
    http: bool,
    webhooks_apart: bool = False,
) -> None:
    """Start the services (and the API), print where they are, stop cleanly on a signal.

    ``webhooks_apart``: the notifier's webhook worker in a process of its own.
    """
    async with Runtime(settings, services=services, webhooks_apart=webhooks_apart) as runtime:
        servers: list[ApiServer] = []
        if http and not runtime.config.principals:
            where = settings.config or "LIAISON_CONFIG is unset"
            log.warning(
                "no principals configured (%s): the HTTP API will refuse every request "
                "(401) until the configuration file lists some",
                where,
            )
        try:
            running = await _serve(settings, services, runtime, servers, http=http)
            # one line, whatever the width: scripts read it
            console.print(running, highlight=False, soft_wrap=True)
            tune_collector()
            await wait_for_signal()
        finally:
            await runtime.live.aclose()  # live streams never end by themselves
            for server in servers:
                await server.stop()
    console.print("stopped")


async def _serve(
    settings: Settings,
    services: Collection[str],
    runtime: Runtime,
    servers: list[ApiServer],
    *,
    http: bool,
) -> str:
    """Start the API (``http``) and the health listener (``HEALTH_ADDR``); say where they are."""
    limits = HttpLimits.of(settings)
    names = ", ".join(services) or "api"
    running = f"Liaison Exchange {names} running"
    if http:
        tls = TlsOptions.of(settings)
        servers.append(ApiServer(create_app(runtime.deps()), *settings.host_port, limits, tls))
        url = await servers[-1].start()
        running = f"Liaison Exchange ready at {url} ({names}); web console at {console_url(url)}"
    if settings.health_host_port is not None:
        health = create_health_app(runtime.readiness, runtime.metrics.scrape)
        servers.append(ApiServer(health, *settings.health_host_port, limits))
        running += f"; health at {await servers[-1].start()}"
    return running
