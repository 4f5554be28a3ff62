"""The HTTP API: the services' routers behind one FastAPI app, with health and metrics.

Who sees what of the process's health: ``/healthz`` and the readiness *status* (200 or 503,
``{"ready": bool}``) answer anyone, for load balancers and probes. The figures — ``/metrics``
(traffic, backlog, dead letters) and which readiness checks fail — are served on the API's
address only to the bearer of the metrics token (``LIAISON_METRICS_TOKEN_SHA256``), and
openly on ``HEALTH_ADDR``, a listener meant for a private address.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse, Response

from services.bootstrap import Deps
from services.console.app import create_console
from services.console.web import ConsoleApi
from services.core import problems
from services.core.asyncapi import document as asyncapi_document
from services.core.auth import holds_token
from services.core.body_limit import BodyLimit
from services.core.problems import Problem
from services.core.prometheus import CONTENT_TYPE
from services.core.web import collaborators
from services.ingest.api import IngestApi
from services.ingest.api import router as ingest_router
from services.ledger.api import router as ledger_router
from services.ledger.witness_api import WitnessApi
from services.ledger.witness_api import router as witness_router
from services.notifier.api import router as notifier_router

Guard = Callable[..., None]
"""A FastAPI dependency that refuses (raises a problem) or lets the request through."""


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
    app.include_router(witness_router)
    # looked up per request, as the routers do
    add_health(app, lambda: app.state.deps.ready(), _shows_figures)
    add_metrics(app, lambda: app.state.deps.metrics.scrape(), _require_figures)
    add_asyncapi(app)
    app.mount("/console", create_console(lambda: app.state.deps))  # web console: its own pages
    return app


def _serves_every_router(deps: Deps) -> tuple[IngestApi, ConsoleApi, WitnessApi]:
    """Never called: mypy checks here that ``Deps`` provides what each router declares (the
    console's protocol includes the ledger's and the notifier's)."""
    return deps, deps, deps


def add_asyncapi(app: FastAPI) -> None:
    """The streams' AsyncAPI document, to anyone (like ``/openapi.json``): it describes the
    interface, the same for every deployment, and names no principal, host or secret."""

    @app.get(
        "/asyncapi.json",
        tags=["documentation"],
        summary="AsyncAPI 3.0: the Redis streams (per-publisher ingress, canonical streams, "
        "receipts, dead letters) and their event schemas",
    )
    async def asyncapi() -> dict[str, Any]:
        return asyncapi_document()


def _shows_figures(request: Request) -> bool:
    """Whether the caller holds the metrics token."""
    return holds_token(
        collaborators(request).metrics_token_sha256, request.headers.get("authorization")
    )


def _require_figures(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> None:
    """The metrics token, or 401 (no or unknown token) / 403 (a principal's token)."""
    if _shows_figures(request):
        return
    principal = collaborators(request).authenticator.authenticate(authorization)
    raise Problem(
        403,
        "Forbidden",
        f"{principal.name} may not read the metrics: they need "
        "the metrics token (LIAISON_METRICS_TOKEN_SHA256), or HEALTH_ADDR",
    )


def create_health_app(
    ready: Callable[[], Awaitable[dict[str, bool]]], scrape: Callable[[], Awaitable[bytes]]
) -> FastAPI:
    """``/healthz``, ``/readyz`` and ``/metrics``: for ``liaison serve ledger|notifier``
    (HEALTH_ADDR)."""
    app = FastAPI(title="Liaison Exchange health", version="0.1.0")
    add_health(app, ready, lambda _request: True)
    add_metrics(app, scrape)
    return app


def add_health(
    app: FastAPI,
    ready: Callable[[], Awaitable[dict[str, bool]]],
    shows_checks: Callable[[Request], bool],
) -> None:
    """Liveness, and readiness: every check of the process holds (503 if not); which checks
    fail only to callers ``shows_checks`` lets see them."""

    @app.get("/healthz", tags=["health"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        summary="Readiness: server reachable, subscribers running, database writable "
        "(which checks fail: with the metrics token)",
        responses={503: {"description": "Not ready", "content": {"application/json": {}}}},
    )
    async def readyz(request: Request) -> JSONResponse:
        checks: dict[str, Any] = await ready()
        ok = all(checks.values())
        body: dict[str, Any] = {"ready": ok}
        if shows_checks(request):
            body["checks"] = checks
        return JSONResponse(body, status_code=200 if ok else 503)


def _open(_request: Request) -> None:
    """No guard: whoever reaches the address (the health listener)."""


def add_metrics(app: FastAPI, scrape: Callable[[], Awaitable[bytes]], guard: Guard = _open) -> None:
    """Prometheus' text exposition format of the process's registry, to whom ``guard`` admits."""

    @app.get(
        "/metrics",
        tags=["health"],
        summary="Prometheus metrics: this process's counters, the streams' backlog, readiness",
        response_class=Response,
        responses={
            200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
            **(problems.documented(401, 403) if guard is not _open else {}),
        },
        dependencies=[Depends(guard)],
    )
    async def metrics() -> Response:
        return Response(await scrape(), media_type=CONTENT_TYPE)
