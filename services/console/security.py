"""What every console response says to the browser, and what every console POST must prove.

* Headers: a Content-Security-Policy that allows only the console's own scripts, styles and
  images (no inline script, no inline style, no other origin), no framing, no sniffing, no
  referrer to elsewhere, and pages never stored by caches.
* A POST must come from the console's own origin (``Origin`` naming this host, and
  ``Sec-Fetch-Site`` — when the browser sends it — ``same-origin``) and carry the session's
  anti-forgery token; otherwise 403. ``SameSite=Strict`` on the cookie is a third fence.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
}
NO_STORE = ("cache-control", "no-store")


class SecurityHeaders:
    """ASGI middleware: the headers above on every console response; ``no-store`` on all but
    the static files (pages hold what only their reader may see)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith(f"{scope.get('root_path', '')}/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.decode().lower() not in HEADERS
                ]
                headers += [(k.encode(), v.encode()) for k, v in HEADERS.items()]
                if not static:
                    headers = [(k, v) for k, v in headers if k.lower() != b"cache-control"]
                    headers.append((NO_STORE[0].encode(), NO_STORE[1].encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def same_origin(request: Request) -> bool:
    """Whether a request comes from a page of this very host (as the browser tells it)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        # Browsers send Origin with every POST; a client that does not is no browser, so no
        # victim of cross-site forgery, and it still needs a session and its token.
        return True
    host = request.headers.get("host", "")
    return origin != "null" and urlsplit(origin).netloc.lower() == host.lower()


def token_matches(expected: str, submitted: str | None) -> bool:
    """The form's anti-forgery token is the session's, compared in constant time."""
    if not submitted or not expected:
        return False
    return hmac.compare_digest(expected.encode(), submitted.encode())
