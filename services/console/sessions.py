"""Console sessions, kept in Redis: a random cookie names one; the server holds the rest.

The browser holds only a random id (``HttpOnly``, ``SameSite=Strict``); Redis holds, under the
SHA-256 of that id, the SHA-256 of the principal's token (never the token), the anti-forgery
token, the chosen language and when the session began. A session ends after ``idle`` without
the person doing anything (the key's TTL), ``absolute`` after sign-in whatever happens, or on
"Sign out" (the key is deleted). The principal is looked up again on every request, so a
principal removed from the configuration loses its sessions at the next restart.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

from redis.asyncio import Redis

from services.core import streams
from services.core.config import ConsoleOptions

COOKIE = "lx_session"
"""The session cookie's name."""


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Session:
    """What the server knows of one signed-in browser."""

    principal: str
    """SHA-256 of the principal's token: how the principal is found again."""
    csrf: str
    """Anti-forgery token: every form of this session carries it."""
    created: float
    """Epoch seconds of sign-in."""
    locale: str | None = None
    verify: dict[str, Any] | None = None
    """The last "Verify chain" result, shown once on the ledger page."""
    flash: str | None = None
    """A one-time notice for the next page ("Acknowledged …")."""


class SessionStore:
    """Sessions in Redis under ``streams.console_session_key``."""

    def __init__(self, redis: Redis, options: ConsoleOptions) -> None:
        self._redis = redis
        self._idle_ms = max(int(options.idle.total_seconds() * 1000), 1)
        self._absolute = options.absolute.total_seconds()

    async def create(self, principal_digest: str, locale: str | None) -> tuple[str, Session]:
        """A new session; returns the cookie value (256 random bits) and the session."""
        cookie = secrets.token_urlsafe(32)
        session = Session(principal_digest, secrets.token_urlsafe(32), time.time(), locale)
        await self._redis.set(self._key(cookie), self._encode(session), px=self._ttl(session))
        return cookie, session

    async def load(self, cookie: str | None, *, touch: bool) -> Session | None:
        """The live session of this cookie, or None; ``touch`` restarts its idle clock (what the
        person does does; the page's own background refreshes do not)."""
        if not cookie or len(cookie) > 100:
            return None
        key = self._key(cookie)
        raw = await self._redis.get(key)
        if raw is None:
            return None
        try:
            session = Session(**json.loads(raw))
        except (ValueError, TypeError):
            await self._redis.delete(key)
            return None
        ttl = self._ttl(session)
        if ttl <= 0:
            await self._redis.delete(key)
            return None
        if touch:
            await self._redis.pexpire(key, ttl)
        return session

    async def save(self, cookie: str, session: Session, **changes: Any) -> Session:
        """Store changes of a live session, keeping its expiry (nothing if it just ended)."""
        updated = replace(session, **changes)
        await self._redis.set(self._key(cookie), self._encode(updated), keepttl=True, xx=True)
        return updated

    async def end(self, cookie: str | None) -> None:
        """Sign out: the session is gone on the server, whatever the browser keeps."""
        if cookie:
            await self._redis.delete(self._key(cookie))

    def _ttl(self, session: Session) -> int:
        """Milliseconds left: the idle period, but never past the absolute end."""
        left_ms = int((session.created + self._absolute - time.time()) * 1000)
        return min(self._idle_ms, left_ms)

    @staticmethod
    def _key(cookie: str) -> str:
        return streams.console_session_key(_digest(cookie))

    @staticmethod
    def _encode(session: Session) -> str:
        return json.dumps(asdict(session))
