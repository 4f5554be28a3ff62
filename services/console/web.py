"""What every console handler needs: the runtime's ports, the signed-in viewer, POST checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import quote

from redis.asyncio import Redis
from starlette.datastructures import FormData
from starlette.requests import Request

from services.console.render import PREFIX, Viewer
from services.console.security import same_origin, token_matches
from services.console.sessions import COOKIE, SessionStore
from services.core.auth import Authenticator
from services.core.config import ConsoleOptions
from services.core.problems import Problem
from services.ledger.api import LedgerApi
from services.notifier.api import NotifierApi


class ConsoleApi(LedgerApi, NotifierApi, Protocol):
    """What the console shows and does: the ledger's and the notifier's parts of the API, the
    principals, and where its sessions live."""

    @property
    def authenticator(self) -> Authenticator:
        """The principals the API knows."""

    @property
    def redis(self) -> Redis:
        """The API's client (sessions, sign-in throttling)."""

    @property
    def console(self) -> ConsoleOptions:
        """The console's settings."""


class NeedsSignIn(Exception):
    """No live session: the person signs in, then comes back to ``back``."""

    def __init__(self, back: str) -> None:
        super().__init__(back)
        self.back = back


def runtime(request: Request) -> ConsoleApi:
    """The API's collaborators (the same inbox, ledger and principals the API uses)."""
    found: Callable[[], ConsoleApi] = request.app.state.deps
    return found()


def sessions(request: Request) -> SessionStore:
    """The session store on the runtime's Redis."""
    deps = runtime(request)
    return SessionStore(deps.redis, deps.console)


def authenticator(request: Request) -> Authenticator:
    """The principals the API knows."""
    return runtime(request).authenticator


async def viewer(request: Request, *, touch: bool = True, back: str | None = None) -> Viewer:
    """The signed-in person, or :class:`NeedsSignIn`; ``touch`` restarts the idle clock."""
    cookie = request.cookies.get(COOKIE) or ""
    store = sessions(request)
    session = await store.load(cookie, touch=touch)
    principal = authenticator(request).by_digest(session.principal) if session else None
    if session is None or principal is None:
        await store.end(cookie)
        raise NeedsSignIn(back or request.url.path)
    found = Viewer(cookie, session, principal)
    request.state.viewer = found
    return found


async def posted(request: Request) -> tuple[Viewer, FormData]:
    """A POST of a signed-in page: same origin, live session, the session's token (else 403)."""
    if not same_origin(request):
        raise Problem(403, "Forbidden", "this form was not sent from the console's own pages")
    form = await request.form()
    who = await viewer(request, back=_referring_page(request))
    token = form.get("csrf_token")
    if not token_matches(who.session.csrf, token if isinstance(token, str) else None):
        raise Problem(403, "Forbidden", "the form's anti-forgery token is missing or stale")
    return who, form


def _referring_page(request: Request) -> str:
    """Where a POST came from, to return there after signing in again (own pages only)."""
    referer = request.headers.get("referer", "")
    host = request.headers.get("host", "")
    for scheme in ("http://", "https://"):
        start = f"{scheme}{host}{PREFIX}/"
        if host and referer.startswith(start):
            return referer.removeprefix(f"{scheme}{host}")
    return f"{PREFIX}/"


def safe_back(value: Any, default: str) -> str:
    """A path of the console to go back to (never another site: ``//evil`` is refused)."""
    if (
        isinstance(value, str)
        and value.startswith(f"{PREFIX}/")
        and not any(c in value for c in ("\\", "\r", "\n"))
    ):
        return value
    return default


def login_url(back: str) -> str:
    """The sign-in page, coming back to ``back`` afterwards."""
    return f"{PREFIX}/login?next={quote(back, safe='/')}"


def form_text(form: FormData, name: str, limit: int) -> str | None:
    """A text field, stripped, at most ``limit`` characters (422 beyond), None when empty."""
    value = form.get(name)
    if not isinstance(value, str):
        return None
    value = value.strip()
    if len(value) > limit:
        raise Problem(422, "Invalid request", f"{name} is longer than {limit} characters")
    return value or None
