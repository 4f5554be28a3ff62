"""The console as an application of its own, mounted at ``/console`` by the HTTP API.

It has its own error pages (HTML, in the reader's language, not problem documents), its own
security headers, and no place in the API's OpenAPI document; it reaches the runtime's ports
through ``deps`` (looked up per request, as the API's routers do).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from services.console import pages_access, pages_audit, pages_auth, pages_officer
from services.console.render import PREFIX, render
from services.console.security import SecurityHeaders
from services.console.web import ConsoleApi, NeedsSignIn, login_url
from services.core.problems import Problem

STATIC = Path(__file__).parent / "static"
ROUTERS = (pages_auth.router, pages_officer.router, pages_audit.router, pages_access.router)
"""Every page of the console (the authorization matrix test has a row for each)."""


def create_console(deps: Callable[[], ConsoleApi]) -> FastAPI:
    """The console's pages, forms, live stream and static files."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state.deps = deps
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for router in ROUTERS:
        app.include_router(router)
    _errors(app)
    return app


def _error_page(request: Request, status: int, detail: str) -> Response:
    viewer = getattr(request.state, "viewer", None)
    return render(request, "error.html", viewer=viewer, status=status, code=status, detail=detail)


def _errors(app: FastAPI) -> None:
    @app.exception_handler(NeedsSignIn)
    async def _sign_in(request: Request, exc: NeedsSignIn) -> Response:
        target = login_url(exc.back)
        if request.headers.get("hx-request") == "true":  # htmx: navigate the whole page
            return Response(status_code=401, headers={"HX-Redirect": target})
        if "text/event-stream" in request.headers.get("accept", ""):
            return Response(status_code=401)
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Response:
        return _error_page(request, exc.status, exc.detail or exc.title)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return _error_page(request, exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error_page(request, 422, f"{where}: {first.get('msg', 'invalid')}")


def console_url(base: str) -> str:
    """The console's address under an API base URL."""
    return f"{base.rstrip('/')}{PREFIX}/"
