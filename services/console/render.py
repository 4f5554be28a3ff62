"""Pages from Jinja2 templates, in the reader's language, with what every page shows."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from services.console import i18n, timeline, views
from services.console.charts import bar_chart
from services.console.sessions import Session
from services.console.svgmap import render_map
from services.core.alert_paths import path_segment
from services.core.config import Principal

TEMPLATES = Path(__file__).parent / "templates"
PREFIX = "/console"
STATIC_VERSION = "3"
"""Bumped when the stylesheet or script changes, so browsers fetch them again."""


@dataclass(frozen=True, slots=True)
class Viewer:
    """A signed-in person: the session (and its cookie) and the principal behind it."""

    cookie: str
    session: Session
    principal: Principal


def path_id(value: str) -> str:
    """An alert id as one URL path segment: every ``/``, ``?``, ``#`` and ``%`` escaped, and
    an id of dots only as ``%2E``, so browsers neither split nor normalise it (the routes take
    the decoded rest of the path): :func:`services.core.alert_paths.path_segment`."""
    return path_segment(value)


def dom_id(value: str) -> str:
    """A stable HTML id for any alert id (which may hold any printable character)."""
    return "a" + hashlib.sha256(value.encode()).hexdigest()[:16]


def row_id(alert_id: str, origin: str) -> str:
    """The HTML id of an inbox row: two units' alerts may share an id, never a row."""
    return dom_id(f"{origin}/{alert_id}")


@functools.cache
def environment(locale: str) -> Environment:
    """One environment per language: its gettext installed, the console's filters added."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(i18n.translations(locale), newstyle=True)  # type: ignore[attr-defined]
    env.filters["path_id"] = path_id
    env.filters["dom_id"] = dom_id
    env.filters["row_id"] = row_id
    env.globals["PREFIX"] = PREFIX
    env.globals["STATIC_VERSION"] = STATIC_VERSION
    env.globals["LANGUAGES"] = i18n.NAMES
    env.globals.update(views=views, timeline=timeline, render_map=render_map, bar_chart=bar_chart)
    return env


def locale_of(request: Request, session: Session | None) -> str:
    """The session's choice, else the language cookie's, else ``Accept-Language``."""
    chosen = (session.locale if session else None) or request.cookies.get(LANG_COOKIE)
    return i18n.supported(chosen) or i18n.negotiate(request.headers.get("accept-language"))


LANG_COOKIE = "lx_lang"
"""Remembers the language before sign-in and after sign-out (no session then)."""


def here(request: Request) -> str:
    """This page's path and query, for forms that come back to it."""
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def render(
    request: Request,
    template: str,
    *,
    viewer: Viewer | None,
    locale: str | None = None,
    status: int = 200,
    csrf: str | None = None,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """A page (or fragment) in the reader's language."""
    lang = locale or locale_of(request, viewer.session if viewer else None)
    env = environment(lang)
    html = env.get_template(template).render(
        lang=lang,
        fmt=i18n.Formats(lang),
        me=viewer.principal if viewer else None,
        csrf=csrf if csrf is not None else (viewer.session.csrf if viewer else ""),
        here=here(request),
        flash=viewer.session.flash if viewer else None,
        **context,
    )
    return HTMLResponse(html, status_code=status, headers=headers)
