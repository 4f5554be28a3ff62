"""The ledger's database connection: the engine (SQLite's settings and single writer), database
failures told apart from bad events, and writes that finish even when their caller is cancelled."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.core.bus import Unavailable
from services.ledger import redaction

log = logging.getLogger(__name__)
T = TypeVar("T")


SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",  # a commit (and so an acknowledgement) survives power loss
    "PRAGMA cache_size=-32000",  # ~32 MB: index pages stay cached across appends
    "PRAGMA wal_autocheckpoint=10000",  # checkpoint every ~40 MB of WAL, not every ~4 MB
)
"""Every SQLite connection's settings (the benchmark's raw limits use the same)."""


def create_engine(url: str) -> AsyncEngine:
    """An engine for the ledger; SQLite gets WAL and ``BEGIN IMMEDIATE`` writers.

    ``hide_parameters``: statement parameters carry persons' identities, so neither
    SQLAlchemy's logs nor its error messages may print them (nor aiosqlite's: redaction)."""
    redaction.install()
    if not url.startswith("sqlite"):
        return create_async_engine(url, pool_pre_ping=True, hide_parameters=True)
    engine = create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True)

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # take the write lock up front: one chain writer

    return engine


@asynccontextmanager
async def outage() -> AsyncIterator[None]:
    """The database's own failures (down, locked, gone) as :class:`Unavailable`: not the events'."""
    try:
        yield
    except (OperationalError, InterfaceError, DisconnectionError, OSError, TimeoutError) as exc:
        raise Unavailable(f"ledger database unavailable: {exc}") from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise Unavailable(f"ledger database connection lost: {exc}") from exc
        raise


async def to_completion(work: Coroutine[Any, Any, T]) -> T:
    """Run a write transaction to its end even if the caller is cancelled.

    A stopping service cancels its tasks, repeatedly; cancelled between
    ``BEGIN IMMEDIATE`` and its rollback, a connection kept SQLite's write lock
    and the final checkpoint waited out the 30 s busy timeout. Shielded, the
    transaction commits or rolls back, and the next writer waits for it on
    the in-process lock.
    """
    task = asyncio.ensure_future(work)
    task.add_done_callback(_log_if_orphaned)
    return await asyncio.shield(task)


def _log_if_orphaned(task: asyncio.Future[Any]) -> None:
    # Retrieve the outcome: when the caller was cancelled, nobody else will.
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.debug("ledger write ended with %r", exc)
