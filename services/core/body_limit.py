"""A cap on request bodies, before any endpoint reads them (413 problem otherwise)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.core.problems import MEDIA_TYPE

SMALL_BODY = 64 * 1024
"""Acknowledgements and the like: a note of 2,000 characters fits many times over."""


class BodyLimit:
    """Refuses bodies over ``limit`` bytes with 413, except under ``exempt`` paths
    (ingest streams its own, larger, limit)."""

    def __init__(self, app: ASGIApp, limit: int = SMALL_BODY, exempt: Iterable[str] = ()) -> None:
        self.app, self.limit, self.exempt = app, limit, tuple(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, send)
            return
        # Small by definition: read it all here, then replay it to the app.
        messages: list[Message] = []
        size, more = 0, True
        while more:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
            if size > self.limit:
                await self._refuse(scope, send)
                return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        problem: dict[str, Any] = {
            "type": "about:blank",
            "title": "Payload too large",
            "status": 413,
            "detail": f"the limit is {self.limit} bytes",
            "instance": scope["path"],
        }
        body = json.dumps(problem).encode()
        headers = [
            (b"content-type", MEDIA_TYPE.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
