"""Signing in and out, and choosing the language."""

from __future__ import annotations

import math
import secrets

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from services.console import i18n
from services.console.render import LANG_COOKIE, PREFIX, locale_of, render
from services.console.security import same_origin, token_matches
from services.console.sessions import COOKIE
from services.console.signin import SigninThrottle
from services.console.web import (
    NeedsSignIn,
    authenticator,
    form_text,
    runtime,
    safe_back,
    sessions,
    viewer,
)
from services.core.auth import token_digest
from services.core.config import Principal, Role
from services.core.problems import Problem

router = APIRouter()
LOGIN_COOKIE = "lx_login"
"""Anti-forgery token of the sign-in and language forms before there is a session."""


def home(principal: Principal) -> str:
    """Where a principal lands: an officer on the unit's inbox, an auditor on the ledger."""
    if principal.role is Role.OFFICER and principal.unit:
        return f"{PREFIX}/units/{principal.unit}"
    return f"{PREFIX}/ledger"


def _cookie(response: Response, request: Request, name: str, value: str, **extra: int) -> None:
    response.set_cookie(
        name,
        value,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        **extra,  # type: ignore[arg-type]
    )


@router.get("/")
async def index(request: Request) -> Response:
    """Signed in: one's home page; otherwise the sign-in page."""
    who = await viewer(request, back=f"{PREFIX}/")
    return RedirectResponse(home(who.principal), status_code=303)


def _login_page(
    request: Request,
    *,
    status: int = 200,
    error: str | None = None,
    notice: str | None = None,
    retry_after: float = 0.0,
) -> Response:
    token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
    back = safe_back(request.query_params.get("next"), "")
    headers = {"Retry-After": str(math.ceil(retry_after))} if retry_after else None
    response = render(
        request,
        "login.html",
        viewer=None,
        csrf=token,
        status=status,
        error=error,
        notice=notice,
        back=back,
        wait=math.ceil(retry_after),
        headers=headers,
    )
    _cookie(response, request, LOGIN_COOKIE, token)
    return response


@router.get("/login")
async def login_form(request: Request) -> Response:
    """The sign-in form: one field, "Access token"."""
    notice = {"out": "signed-out", "expired": "expired"}.get(request.query_params.get("why", ""))
    return _login_page(request, notice=notice)


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the token; open a session, or show the form again (401), slower each time."""
    if not same_origin(request):
        raise Problem(403, "Forbidden", "sign in from the console's own page")
    form = await request.form()
    submitted = form.get("csrf_token")
    if not token_matches(
        request.cookies.get(LOGIN_COOKIE, ""), submitted if isinstance(submitted, str) else None
    ):
        raise Problem(403, "Forbidden", "the sign-in form is stale: open it again")
    token = form_text(form, "token", 4096) or ""
    digest = token_digest(token)
    client = request.client.host if request.client else "unknown"
    throttle = SigninThrottle(runtime(request).redis)
    if wait := await throttle.wait(client, digest):
        return _login_page(request, status=429, error="wait", retry_after=wait)
    principal = authenticator(request).by_digest(digest) if token else None
    if principal is None:
        wait = await throttle.failed(client, digest)
        return _login_page(request, status=401, error="wrong", retry_after=wait)
    if principal.role in (Role.PUBLISHER, Role.WITNESS):  # systems, not people
        return _login_page(request, status=403, error="publisher")
    await throttle.succeeded(client)
    store = sessions(request)
    await store.end(request.cookies.get(COOKIE))  # a new id at every sign-in
    cookie, _ = await store.create(digest, locale_of(request, None))
    response = RedirectResponse(safe_back(form.get("next"), home(principal)), status_code=303)
    _cookie(response, request, COOKIE, cookie)
    response.delete_cookie(LOGIN_COOKIE, path=PREFIX)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session on the server; the browser's cookie is dropped too."""
    if not same_origin(request):
        raise Problem(403, "Forbidden", "this form was not sent from the console's own pages")
    form = await request.form()
    try:
        who = await viewer(request)
    except NeedsSignIn:
        return RedirectResponse(f"{PREFIX}/login?why=expired", status_code=303)
    submitted = form.get("csrf_token")
    if not token_matches(who.session.csrf, submitted if isinstance(submitted, str) else None):
        raise Problem(403, "Forbidden", "the form's anti-forgery token is missing or stale")
    await sessions(request).end(who.cookie)
    response = RedirectResponse(f"{PREFIX}/login?why=out", status_code=303)
    response.delete_cookie(COOKIE, path=PREFIX)
    return response


@router.post("/language")
async def language(request: Request) -> Response:
    """Switch the language; remembered in the session (and a cookie for the sign-in page)."""
    if not same_origin(request):
        raise Problem(403, "Forbidden", "this form was not sent from the console's own pages")
    form = await request.form()
    chosen = i18n.supported(str(form.get("lang") or ""))
    if chosen is None:
        raise Problem(422, "Invalid request", "unknown language")
    submitted = form.get("csrf_token")
    submitted = submitted if isinstance(submitted, str) else None
    try:
        who = await viewer(request)
    except NeedsSignIn:
        who = None
    expected = who.session.csrf if who else request.cookies.get(LOGIN_COOKIE, "")
    if not token_matches(expected, submitted):
        raise Problem(403, "Forbidden", "the form's anti-forgery token is missing or stale")
    if who is not None:
        await sessions(request).save(who.cookie, who.session, locale=chosen)
    response = RedirectResponse(safe_back(form.get("next"), f"{PREFIX}/login"), status_code=303)
    _cookie(response, request, LANG_COOKIE, chosen, max_age=365 * 86400)
    return response
