"""The console's fences, over HTTP: who may open what (a matrix with a row per page),
anti-forgery, sessions and their cookie, slowed-down wrong tokens, security headers."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import MutableMapping
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.routing import Mount, Route

from services.bootstrap import Runtime
from services.console.app import ROUTERS, create_console
from services.console.security import CSP
from services.console.sessions import COOKIE
from services.core import streams
from services.entrypoints.http import create_app
from tests import factories
from tests.integration.conftest import TOKENS, auth, eventually
from tests.integration.console_client import ORIGIN, csrf_of, post_form, sign_in

UNIT = "IMT-GULISTAN"
CALLERS = ("anonymous", "officer-own", "officer-other", "auditor")
WHO = {"officer-own": "gulistan", "officer-other": "tashkent", "auditor": "auditor"}
SIGN_IN = 303  # no session: off to the sign-in page


def _cells(**cells: int) -> dict[str, int]:
    return {"anonymous": SIGN_IN, "officer-own": 403, "officer-other": 403, "auditor": 403,
            **{k.replace("_", "-"): v for k, v in cells.items()}}  # fmt: skip


OFFICER_READS = _cells(officer_own=200, auditor=200)
AUDITOR_READS = _cells(auditor=200)
EVERYONE = dict.fromkeys(CALLERS, 200)
# (method, path, expected per caller); {alert} is an alert IMT-GULISTAN received
MATRIX: list[tuple[str, str, dict[str, int]]] = [
    ("GET", "/console/", dict.fromkeys(CALLERS, 303)),
    ("GET", "/console/login", EVERYONE),
    ("POST", "/console/login", dict.fromkeys(CALLERS, 401)),  # with a wrong token
    ("POST", "/console/logout", {**dict.fromkeys(CALLERS, 303)}),
    ("POST", "/console/language", dict.fromkeys(CALLERS, 303)),
    ("GET", f"/console/units/{UNIT}", OFFICER_READS),
    ("GET", f"/console/units/{UNIT}/panel", OFFICER_READS),
    ("GET", f"/console/units/{UNIT}/events", {**_cells(officer_own=200), "anonymous": 401}),
    ("POST", f"/console/units/{UNIT}/acknowledge", _cells(officer_own=303)),
    ("GET", f"/console/units/{UNIT}/alerts/{{alert}}", OFFICER_READS),
    ("GET", "/console/ledger", AUDITOR_READS),
    ("GET", "/console/ledger/entries/1", AUDITOR_READS),
    ("POST", "/console/ledger/verify", _cells(auditor=303)),
    ("GET", "/console/ledger/bundle", AUDITOR_READS),
    ("GET", "/console/alerts/{alert}", AUDITOR_READS),
    ("GET", "/console/export/trail.csv?alert_id={alert}", AUDITOR_READS),
    ("GET", "/console/export/trail.jsonl?alert_id={alert}", AUDITOR_READS),
    ("GET", "/console/stats", AUDITOR_READS),
    ("GET", "/console/stats.csv", AUDITOR_READS),
    ("GET", "/console/access", AUDITOR_READS),
    ("GET", "/console/static/console.css", EVERYONE),
]


def test_the_matrix_has_a_row_for_every_console_page() -> None:
    app = create_console(lambda: None)  # type: ignore[arg-type, return-value]
    served = {("GET", f"{r.path}/{{path}}") for r in app.routes if isinstance(r, Mount)}
    for router in ROUTERS:  # every router the console includes
        for route in router.routes:
            assert isinstance(route, Route)
            served |= {(m, route.path) for m in (route.methods or ()) if m != "HEAD"}
    listed = {
        (method, re.sub(r"\?.*", "", path).removeprefix("/console")
         .replace(UNIT, "{unit}").replace("{alert}", "{alert_id:path}").replace("/entries/1", "/entries/{seq}")
         .replace("/static/console.css", "/static/{path}"))
        for method, path, _ in MATRIX
    }  # fmt: skip
    assert served == listed, (
        f"pages without a row: {served - listed}; rows without a page: {listed - served}"
    )


@pytest.fixture
async def app(runtime: Runtime) -> FastAPI:
    """The API with its console, over the test runtime."""
    return create_app(runtime.deps())


def client(app: FastAPI, address: str = "127.0.0.1", scheme: str = "http") -> httpx.AsyncClient:
    """A browser-like client (cookies kept) from ``address``."""
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    return httpx.AsyncClient(transport=transport, base_url=f"{scheme}://liaison")


async def _received_alert(api: httpx.AsyncClient, **extra: Any) -> dict[str, Any]:
    alert = factories.alert(**extra)
    assert (await api.post("/v1/events", json=alert, headers=auth("customs"))).status_code == 202

    async def delivered() -> bool:
        inbox = await api.get(f"/v1/units/{UNIT}/alerts", headers=auth("auditor"))
        return any(a["alert_id"] == alert["id"] for a in inbox.json()["alerts"])

    await eventually(delivered)
    return alert


async def _stream_status(app: FastAPI, path: str, cookie: str | None) -> int:
    """The status of an endless response: its start message, then the client leaves."""
    started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    headers = [(b"accept", b"text/event-stream"), (b"host", b"liaison")]
    if cookie:
        headers.append((b"cookie", f"{COOKIE}={cookie}".encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "headers": headers, "server": ("liaison", 80),
             "client": ("127.0.0.1", 1)}  # fmt: skip
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await started
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start" and not started.done():
            started.set_result(message["status"])

    task = asyncio.create_task(app(scope, receive, send))
    try:
        async with asyncio.timeout(10):
            return await started
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _call(app: FastAPI, web: httpx.AsyncClient, method: str, path: str, csrf: str) -> int:
    if path.endswith("/events"):
        return await _stream_status(app, path, web.cookies.get(COOKIE))
    if method == "GET":
        return (await web.get(path)).status_code
    data = {"csrf_token": csrf}
    if path == "/console/login":
        form = await web.get("/console/login")
        data = {"csrf_token": csrf_of(form.text), "token": "not-a-token"}
    elif path == "/console/language":
        if not csrf:
            data["csrf_token"] = csrf_of((await web.get("/console/login")).text)
        data["lang"] = "ru"
    elif "/acknowledge" in path:
        data["alert_id"] = path.split("|")[1] if "|" in path else data.get("alert_id", "")
    return (await post_form(web, path.split("|")[0], data)).status_code


@pytest.mark.parametrize(("method", "template", "expected"), MATRIX,
                         ids=[f"{m} {p}" for m, p, _ in MATRIX])  # fmt: skip
async def test_each_caller_gets_exactly_its_status(
    app: FastAPI, method: str, template: str, expected: dict[str, int]
) -> None:
    async with client(app) as api:
        alert = await _received_alert(api)

        async def recorded() -> bool:
            return bool(
                (await api.get("/v1/ledger/events", headers=auth("auditor"))).json()["events"]
            )

        await eventually(recorded)
    path = template.replace("{alert}", alert["id"])
    if path.endswith("/acknowledge"):
        path += f"|{alert['id']}"
    actual = {}
    for caller in CALLERS:
        async with client(app) as web:
            csrf = await sign_in(web, WHO[caller]) if caller in WHO else ""
            actual[caller] = await _call(app, web, method, path, csrf)
    assert actual == expected


async def test_a_publisher_cannot_sign_in(app: FastAPI) -> None:
    async with client(app) as web:
        form = await web.get("/console/login")
        response = await post_form(web, "/console/login",
                                   {"csrf_token": csrf_of(form.text), "token": TOKENS["customs"]})  # fmt: skip
        assert response.status_code == 403
        assert "agency system" in response.text
        assert COOKIE not in web.cookies


async def _ack(web: httpx.AsyncClient, alert_id: str, csrf: str | None, origin: str | None = ORIGIN,
               headers: dict[str, str] | None = None) -> httpx.Response:  # fmt: skip
    data = {"alert_id": alert_id, "note": "seen"}
    if csrf is not None:
        data["csrf_token"] = csrf
    sent = {"Origin": origin} if origin else {}
    return await web.post(
        f"/console/units/{UNIT}/acknowledge", data=data, headers={**sent, **(headers or {})}
    )


async def test_forged_requests_are_refused_and_change_nothing(app: FastAPI) -> None:
    async with client(app) as api, client(app) as web, client(app) as other:
        alert = await _received_alert(api)
        csrf = await sign_in(web, "gulistan")
        other_csrf = await sign_in(other, "gulistan")
        assert other_csrf != csrf
        refused = [
            await _ack(web, alert["id"], None),  # no token
            await _ack(web, alert["id"], "forged"),
            await _ack(web, alert["id"], other_csrf),  # another session's
            await _ack(web, alert["id"], csrf, origin="http://evil.example"),
            await _ack(web, alert["id"], csrf, origin="null"),
            await _ack(web, alert["id"], csrf, headers={"Sec-Fetch-Site": "cross-site"}),
            await _ack(web, alert["id"], csrf, headers={"Sec-Fetch-Site": "same-site"}),
        ]
        assert [r.status_code for r in refused] == [403] * len(refused)
        delivery = (await api.get(f"/v1/units/{UNIT}/alerts", headers=auth("auditor"))).json()[
            "alerts"
        ][0]
        assert delivery["acknowledged_at"] is None
        done = await _ack(web, alert["id"], csrf, headers={"Sec-Fetch-Site": "same-origin"})
        assert done.status_code == 303
        delivery = (await api.get(f"/v1/units/{UNIT}/alerts", headers=auth("auditor"))).json()[
            "alerts"
        ][0]
        assert (delivery["acknowledged_by"], delivery["acknowledged_at"] is not None) == (
            "gulistan-duty",
            True,
        )


async def test_a_foreign_login_form_is_refused(app: FastAPI) -> None:
    async with client(app) as web:
        form = await web.get("/console/login")
        data = {"csrf_token": csrf_of(form.text), "token": TOKENS["gulistan"]}
        assert (
            await post_form(web, "/console/login", data, origin="http://evil.example")
        ).status_code == 403
        assert (
            await post_form(web, "/console/login", {**data, "csrf_token": "x"})
        ).status_code == 403
        assert COOKIE not in web.cookies


async def test_the_session_cookie_and_where_the_token_is_not(app: FastAPI) -> None:
    for scheme, secure in (("http", False), ("https", True)):
        async with client(app, scheme=scheme) as web:
            form = await web.get("/console/login")
            response = await web.post("/console/login", data={"csrf_token": csrf_of(form.text),
                                       "token": TOKENS["gulistan"]}, headers={"Origin": f"{scheme}://liaison"})  # fmt: skip
            assert response.status_code == 303
            [cookie] = [
                c for c in response.headers.get_list("set-cookie") if c.startswith(f"{COOKIE}=")
            ]
            attributes = {a.strip().split("=")[0].lower() for a in cookie.split(";")[1:]}
            assert {"httponly", "samesite", "path"} <= attributes
            assert "samesite=strict" in cookie.lower()
            assert "path=/console" in cookie.lower()
            assert ("secure" in attributes) is secure
            assert TOKENS["gulistan"] not in str(response.headers)
            page = await web.get(response.headers["location"])
            assert TOKENS["gulistan"] not in page.text


async def test_sign_out_ends_the_session_on_the_server(app: FastAPI, redis: Any) -> None:
    async with client(app) as web:
        csrf = await sign_in(web, "gulistan")
        cookie = web.cookies[COOKIE]
        assert len([k async for k in redis.scan_iter(match=streams.console_session_key("*"))]) == 1
        assert (await post_form(web, "/console/logout", {"csrf_token": csrf})).status_code == 303
        assert [k async for k in redis.scan_iter(match=streams.console_session_key("*"))] == []
    async with client(app) as replay:  # the old cookie, kept by someone: worth nothing
        replay.cookies.set(COOKIE, cookie, domain="liaison", path="/console")
        response = await replay.get(f"/console/units/{UNIT}")
        assert response.status_code == 303
        assert response.headers["location"].startswith("/console/login")


async def test_sessions_expire_when_idle_and_absolutely(app: FastAPI, redis: Any) -> None:
    async with client(app) as web:
        await sign_in(web, "gulistan")
        [key] = [k async for k in redis.scan_iter(match=streams.console_session_key("*"))]
        assert 29 * 60 * 1000 < await redis.pttl(key) <= 30 * 60 * 1000  # idle: 30 min
        await redis.pexpire(key, 60_000)
        await web.get(f"/console/units/{UNIT}/panel")  # the page's own refresh: not activity
        assert await redis.pttl(key) <= 60_000
        await web.get(f"/console/units/{UNIT}")  # the person opens a page: activity
        assert await redis.pttl(key) > 29 * 60 * 1000
        stored = json.loads(await redis.get(key))
        stored["created"] -= 12 * 3600 + 1  # signed in more than 12 hours ago
        await redis.set(key, json.dumps(stored), keepttl=True)
        response = await web.get(f"/console/units/{UNIT}")
        assert response.status_code == 303
        assert await redis.exists(key) == 0


async def test_wrong_tokens_are_slowed_down(app: FastAPI, redis: Any) -> None:
    async def attempt(web: httpx.AsyncClient, token: str) -> httpx.Response:
        form = await web.get("/console/login")
        return await post_form(
            web, "/console/login", {"csrf_token": csrf_of(form.text), "token": token}
        )

    async with client(app, "10.0.0.7") as web:
        statuses = [(await attempt(web, f"guess-{n}")).status_code for n in range(5)]
        assert statuses == [401] * 5
        blocked = await attempt(web, TOKENS["gulistan"])  # even the right token must wait
        assert blocked.status_code == 429
        assert int(blocked.headers["retry-after"]) >= 1
        assert "Too many wrong tokens" in blocked.text
        assert COOKIE not in web.cookies
    async with client(app, "10.0.0.8") as elsewhere:  # another client is not held up
        assert (await attempt(elsewhere, TOKENS["gulistan"])).status_code == 303
    async with client(app, "10.0.0.9") as spread:  # one token tried from many places
        for n in range(5):
            async with client(app, f"10.1.0.{n}") as each:
                assert (await attempt(each, "the-same-guess")).status_code == 401
        assert (await attempt(spread, "the-same-guess")).status_code == 429
    async for key in redis.scan_iter(match=streams.console_signin_block_key("client", "10.0.0.7")):
        await redis.delete(key)  # the wait is over
    async with client(app, "10.0.0.7") as web:
        assert (await attempt(web, TOKENS["gulistan"])).status_code == 303


async def test_pages_carry_the_security_headers(app: FastAPI) -> None:
    async with client(app) as web:
        for path in ("/console/login", "/console/static/console.css", "/console/nowhere"):
            response = await web.get(path)
            assert response.headers["content-security-policy"] == CSP
            assert "script-src 'self'" in CSP
            assert "'unsafe-inline'" not in CSP
            assert "frame-ancestors 'none'" in CSP
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["x-content-type-options"] == "nosniff"
        assert (await web.get("/console/login")).headers["cache-control"] == "no-store"
        assert (await web.get("/console/nowhere")).status_code == 404


@pytest.mark.parametrize(
    "target", ["//evil.example/x", "https://evil.example/", "/v1/ledger/events", "/console\\..\\x"]
)
async def test_sign_in_never_redirects_elsewhere(app: FastAPI, target: str) -> None:
    async with client(app) as web:
        form = await web.get("/console/login", params={"next": target})
        response = await post_form(web, "/console/login", {"csrf_token": csrf_of(form.text),
                                   "token": TOKENS["gulistan"], "next": target})  # fmt: skip
        assert response.headers["location"] == f"/console/units/{UNIT}"


async def test_alert_ids_with_slashes_and_odd_characters(app: FastAPI) -> None:
    async with client(app) as api:
        alert = await _received_alert(api, id="BT-2024/0091")
        odd = await _received_alert(api, id="A 1?x=%2F#../..")
    async with client(app) as web:
        csrf = await sign_in(web, "gulistan")
        for path in ("/console/units/IMT-GULISTAN/alerts/BT-2024/0091",
                     "/console/units/IMT-GULISTAN/alerts/BT-2024%2F0091"):  # fmt: skip
            page = await web.get(path)
            assert page.status_code == 200, path
            assert "BT-2024/0091" in page.text
        inbox = await web.get(f"/console/units/{UNIT}?show=all")
        assert (
            'href="/console/units/IMT-GULISTAN/alerts/A%201%3Fx%3D%252F%23..%2F..?source=BLO-OYBEK"'
            in inbox.text
        )
        page = await web.get("/console/units/IMT-GULISTAN/alerts/A%201%3Fx%3D%252F%23..%2F..")
        assert page.status_code == 200
        assert (await _ack(web, odd["id"], csrf)).status_code == 303
        assert (await _ack(web, alert["id"], csrf)).status_code == 303
    async with client(app) as web:
        await sign_in(web, "auditor")
        assert (await web.get("/console/alerts/BT-2024/0091")).status_code == 200
        trail = await web.get("/console/export/trail.csv", params={"alert_id": "BT-2024/0091"})
        assert "alert.acknowledged" in trail.text or "alert.delivered" in trail.text
