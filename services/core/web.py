"""What every HTTP router asks of a request: who calls, and the app's collaborators.

The app factory puts the process's collaborators on ``app.state.deps``; each router reads them
through its own protocol (``IngestApi``, ``LedgerApi``, ``NotifierApi``), which names only what
that router uses, so a router never imports another service to learn their types.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Header, Request

from services.core.auth import Authenticator
from services.core.config import Principal


def collaborators(request: Request) -> Any:
    """The collaborators the app was made with; each router's dependency narrows the type."""
    return request.app.state.deps


def caller(request: Request, authorization: Annotated[str | None, Header()] = None) -> Principal:
    """FastAPI dependency: the authenticated principal (401 otherwise) — by the TLS client
    certificate the connection presented (mutual TLS, when the API serves TLS itself), else
    by the bearer token."""
    authenticator: Authenticator = collaborators(request).authenticator
    chain = request.scope.get("extensions", {}).get("tls", {}).get("client_cert_chain")
    if chain:  # put there by our TLS server only (services/entrypoints/http_tls.py)
        return authenticator.by_certificate(chain[0])
    return authenticator.authenticate(authorization)
