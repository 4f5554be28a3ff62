"""The HTTP API: the services' routers behind one FastAPI app, with health and metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response

from services import problems
from services.body_limit import BodyLimit
from services.console.app import create_console
from services.ingest.api import router as ingest_router
from services.ledger.api import router as ledger_router
from services.notifier.api import router as notifier_router
from services.prometheus import CONTENT_TYPE
from services.runtime_deps import Deps


def create_app(deps: Deps) -> FastAPI:
    """The API over already-running services (the bootstrap owns their lifecycle)."""
    app = FastAPI(
        title="Liaison Exchange",
        version="0.1.0",
        description="Seizure reports and alerts between Border Liaison Offices and "
        "Interagency Mobile Teams. Authenticate with `Authorization: Bearer <token>`.",
    )
    app.state.deps = deps
    problems.install(app)
    app.add_middleware(BodyLimit, exempt=["/v1/events"])  # ingest has its own limit
    app.include_router(ingest_router)
    app.include_router(notifier_router)
    app.include_router(ledger_router)
    # looked up per request, as the routers do
    add_health(app, lambda: app.state.deps.ready())
    add_metrics(app, lambda: app.state.deps.metrics.scrape())
    app.mount("/console", create_console(lambda: app.state.deps))  # web console: its own pages
    return app


def create_health_app(
    ready: Callable[[], Awaitable[dict[str, bool]]], scrape: Callable[[], Awaitable[bytes]]
) -> FastAPI:
    """``/healthz``, ``/readyz`` and ``/metrics``: for ``liaison serve ledger|notifier``
    (HEALTH_ADDR)."""
    app = FastAPI(title="Liaison Exchange health", version="0.1.0")
    add_health(app, ready)
    add_metrics(app, scrape)
    return app


def add_health(app: FastAPI, ready: Callable[[], Awaitable[dict[str, bool]]]) -> None:
    """Liveness, and readiness: every check of the process holds (503 and which do not)."""

    @app.get("/healthz", tags=["health"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        summary="Readiness: server reachable, subscribers running, database writable",
        responses={503: {"description": "Not ready", "content": {"application/json": {}}}},
    )
    async def readyz() -> JSONResponse:
        checks: dict[str, Any] = await ready()
        ok = all(checks.values())
        return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)


def add_metrics(app: FastAPI, scrape: Callable[[], Awaitable[bytes]]) -> None:
    """Prometheus' text exposition format of the process's registry, for anyone."""

    @app.get(
        "/metrics",
        tags=["health"],
        summary="Prometheus metrics: this process's counters, the streams' backlog, readiness",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def metrics() -> Response:
        return Response(await scrape(), media_type=CONTENT_TYPE)
