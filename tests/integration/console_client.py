"""Driving the console over HTTP as a browser would (forms, cookies, Origin), without one."""

from __future__ import annotations

import html
import re

import httpx

from tests.integration.conftest import TOKENS

ORIGIN = "http://liaison"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]*)"')


def csrf_of(page: str) -> str:
    """The anti-forgery token the page's forms carry."""
    found = _TOKEN.search(page)
    assert found, "no form with an anti-forgery token on the page"
    return html.unescape(found[1])


async def sign_in(client: httpx.AsyncClient, who: str, locale: str | None = None) -> str:
    """Sign ``who`` (a key of TOKENS) in; returns the session's anti-forgery token."""
    headers = {"Accept-Language": locale} if locale else {}
    form = await client.get("/console/login", headers=headers)
    response = await client.post(
        "/console/login",
        data={"csrf_token": csrf_of(form.text), "token": TOKENS[who]},
        headers={"Origin": ORIGIN, **headers},
    )
    assert response.status_code == 303, response.text
    landing = await client.get(response.headers["location"], headers=headers)
    assert landing.status_code == 200, landing.text
    return csrf_of(landing.text)


async def post_form(
    client: httpx.AsyncClient, path: str, data: dict[str, str], origin: str | None = ORIGIN
) -> httpx.Response:
    """A form POST from a page of ``origin``."""
    headers = {"Origin": origin} if origin else {}
    return await client.post(path, data=data, headers=headers)
