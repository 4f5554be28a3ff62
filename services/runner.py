"""``liaison up`` and ``liaison serve``: run until SIGINT/SIGTERM."""

from __future__ import annotations

import gc
from collections.abc import Collection

from rich.console import Console

from services.bootstrap import Runtime
from services.config import Settings
from services.http import create_app, create_health_app
from services.serve import ApiServer, wait_for_signal


async def run_services(
    settings: Settings, services: Collection[str], console: Console, *, http: bool
) -> None:
    """Start the services (and the API), print where they are, stop cleanly on a signal."""
    async with Runtime(settings, services=services) as runtime:
        server = None
        if http:
            host, port = settings.host_port
            server = ApiServer(create_app(runtime.deps()), host, port)
            url = await server.start()
            console.print(
                f"Liaison Exchange ready at {url} ({', '.join(services)})", highlight=False
            )
        elif settings.health_host_port is not None:
            server = ApiServer(
                create_health_app(runtime.readiness, runtime.metrics.scrape),
                *settings.health_host_port,
            )
            url = await server.start()
            console.print(f"Liaison Exchange {', '.join(services)} running; health at {url}",
                          highlight=False)  # fmt: skip
        else:
            console.print(f"Liaison Exchange {', '.join(services)} running", highlight=False)
        # Everything loaded so far lives as long as the process: keep it out of the collector's
        # full passes, which otherwise stall the event loop for tens of milliseconds.
        gc.freeze()
        try:
            await wait_for_signal()
        finally:
            if server is not None:
                await server.stop()
    console.print("stopped")
