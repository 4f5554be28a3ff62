"""RFC 9457 problem details: every HTTP error the API returns."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from schemas.limits import explain
from services.core.bus import OUTAGES

log = logging.getLogger(__name__)

RETRY_AFTER = "1"
"""Seconds to wait before retrying a request refused for an outage (publishing is idempotent)."""

MEDIA_TYPE = "application/problem+json"
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
}


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` declaring these statuses as problem documents."""
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "content": {MEDIA_TYPE: {"schema": SCHEMA}},
        }
        for status in statuses
    }


class Problem(Exception):
    """An error answered as ``application/problem+json``."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status, self.title, self.detail = status, title, detail
        self.errors, self.headers = errors, headers
        self.extensions = extensions or {}
        """More members of the document (RFC 9457 §3.2), e.g. the sources to choose from."""

    def body(self, instance: str) -> dict[str, Any]:
        """The problem document."""
        doc: dict[str, Any] = {"type": "about:blank", "title": self.title, "status": self.status}
        if self.detail:
            doc["detail"] = self.detail
        doc["instance"] = instance
        if self.errors is not None:
            doc["errors"] = self.errors
        return {**self.extensions, **doc}


def _respond(request: Request, problem: Problem) -> JSONResponse:
    return JSONResponse(
        problem.body(request.url.path),
        status_code=problem.status,
        media_type=MEDIA_TYPE,
        headers=problem.headers,
    )


def install(app: FastAPI) -> None:
    """Make every error of ``app`` a problem document, never a traceback."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return _respond(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _respond(request, Problem(exc.status_code, str(exc.detail)))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]), "message": explain(e)}
            for e in exc.errors()
        ]
        return _respond(request, Problem(422, "Invalid request", errors=errors))

    async def _outage(request: Request, exc: Exception) -> JSONResponse:
        log.warning("%s %s: unavailable: %s", request.method, request.url.path, exc)
        problem = Problem(
            503,
            "Service unavailable",
            "a dependency is down; retry the request",
            headers={"Retry-After": RETRY_AFTER},
        )
        return _respond(request, problem)

    for outage in OUTAGES:
        app.add_exception_handler(outage, _outage)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return _respond(request, Problem(500, "Internal error", "the error has been logged"))
