"""The append-only ledger on SQL: idempotent append, chained, signed, replayable."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from schemas.events import CloudEvent
from services.ledger import append as sql
from services.ledger import migrate, scan, tables
from services.ledger.checkpoints import Checkpoint, Policy
from services.ledger.engine import outage, to_completion
from services.ledger.health import WriteHealth
from services.ledger.notary import Notary, SignerRefused, Signing
from services.ledger.records import Record, record_of_event, utc_text
from services.ledger.scan import Query, RawRow
from services.ledger.signing import Signer
from services.ledger.verify import ChainVerifier, VerifyReport

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One recorded event with its place in the chain."""

    seq: int
    hash: str
    prev_hash: str
    recorded_at: str
    event: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The public shape (docs/http-api.md, "ledger entry")."""
        return {
            "seq": self.seq,
            "hash": self.hash,
            "prev_hash": self.prev_hash,
            "recorded_at": self.recorded_at,
            "event": self.event,
        }


class UnreadableEntry(ValueError):
    """A stored entry that is not what the ledger wrote: the database was altered."""

    def __init__(self, seq: int, what: str) -> None:
        super().__init__(
            f"entry #{seq} {what}: the database was altered; `liaison ledger verify` names what broke"
        )
        self.seq = seq


class StoredEntry(NamedTuple):
    """One entry as stored: the event is its canonical JSON text, unparsed."""

    seq: int
    hash: str
    prev_hash: str
    recorded_at: str
    event: str


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What one append did: new entries' seqs and how many events were already recorded."""

    appended: tuple[int, ...] = ()
    duplicates: int = 0


CheckpointPolicy = Policy
"""Sign a checkpoint every ``every`` entries, or ``interval`` seconds after new ones."""
DEFAULT_POLICY = Policy()


class SqlLedger:
    """The ledger on a SQLAlchemy async engine (SQLite or PostgreSQL)."""

    def __init__(
        self,
        engine: AsyncEngine,
        signer: Signer | None = None,
        policy: Policy = DEFAULT_POLICY,
    ) -> None:
        self.engine, self.signer, self.policy = engine, signer, policy
        self.notary = Notary(signer, policy) if signer else None
        self._write_lock = asyncio.Lock()  # one writer per process; the database guards the rest
        self.health = WriteHealth()

    async def create_schema(self) -> None:
        """Bring the database to the current schema (Alembic migrations)."""
        await migrate.upgrade(self.engine)

    async def close(self) -> None:
        """Record the last checkpoint signed, and release the connection pool."""
        if self.notary:
            await self.notary.flush()
        await self.engine.dispose()

    async def append(self, events: Sequence[CloudEvent]) -> AppendResult:
        """Append the events not yet recorded, in order, in one transaction."""
        return await self.append_records([record_of_event(ev) for ev in events])

    async def append_records(self, records: Sequence[Record]) -> AppendResult:
        """Append the records not yet recorded (by ``(source, id)``), in order, in one transaction."""
        if not records:
            return AppendResult()
        return await to_completion(self._append_records(records))

    async def _append_records(self, records: Sequence[Record]) -> AppendResult:
        now = datetime.now(UTC)
        async with self._write_lock, self.health.watch(), outage():
            async with self.engine.begin() as conn:
                await sql.lock(conn)
                fresh = await sql.not_recorded(conn, records)
                first, prev = await sql.head(conn)
                # the signer refuses (and nothing is appended) unless the chain extends its record
                base = await self.notary.base(conn, first, prev) if self.notary else None
                rows, head = sql.chain(fresh, first, prev, utc_text(now))
                plan = await self._sign(conn, base, (first, prev), rows, now)
                if rows:
                    await sql.insert(conn, rows)
            if self.notary and plan:
                await self.notary.committed((first + len(rows), head), plan)
        return AppendResult(
            tuple(range(first + 1, first + len(rows) + 1)), len(records) - len(fresh)
        )

    async def checkpoint_if_due(self, *, force: bool = False) -> Checkpoint | None:
        """Sign the head if the policy says so, or if unsigned entries exist and ``force`` is set."""
        if self.notary is None:
            return None
        return await to_completion(self._checkpoint(force))

    async def _checkpoint(self, force: bool) -> Checkpoint | None:
        now = datetime.now(UTC)
        async with self._write_lock, self.health.watch(), outage():
            async with self.engine.begin() as conn:
                await sql.lock(conn)
                head = await sql.head(conn)
                base = await self.notary.base(conn, *head) if self.notary else None
                plan = await self._sign(conn, base, head, [], now, force=force)
            if self.notary and plan:
                await self.notary.committed(head, plan)
        return plan.checkpoints[-1] if plan and plan.checkpoints else None

    async def _sign(
        self,
        conn: AsyncConnection,
        base: Checkpoint | None,
        head: tuple[int, str],
        rows: Sequence[sql.Row],
        now: datetime,
        *,
        force: bool = False,
    ) -> Signing | None:
        """Sign and store the checkpoints due with this append (None without a signer)."""
        if self.notary is None:
            return None
        plan = self.notary.due(base, head, rows, now, force=force)
        if plan.checkpoints:
            await conn.execute(insert(tables.checkpoints), [c.columns() for c in plan.checkpoints])
        return plan

    async def ready(self, timeout: float = 2.0) -> bool:
        """Whether the database answers and takes writes, and the signer signs (readiness)."""
        if not self.health.ok or (self.notary and (self.notary.refusal or self.notary.unrecorded)):
            return False
        try:
            async with asyncio.timeout(timeout), self.engine.connect() as conn:
                await conn.execute(select(1))
        except Exception:  # whatever the driver raises: not ready, and readiness says so
            return False
        return True

    async def count(self) -> int:
        """Number of entries."""
        async with self.engine.connect() as conn:
            return int(
                (await conn.execute(select(func.count()).select_from(tables.entries))).scalar_one()
            )

    async def checkpoints(self, upto: int | None = None) -> list[Checkpoint]:
        """Every signed checkpoint (of at most ``upto`` entries), oldest first."""
        c = tables.checkpoints
        query = select(c).order_by(c.c.size)
        if upto is not None:
            query = query.where(c.c.size <= upto)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [Checkpoint.from_dict(row._mapping) for row in rows]

    async def pages(self, query: Query = Query()) -> AsyncGenerator[list[RawRow]]:
        """The selected entries in seq order as pages of ``(seq, hash, prev_hash, recorded_at,
        event)`` tuples, ``event`` the stored text: the fast path for replay, export and verify."""
        async with aclosing(scan.pages(self.engine, query)) as pages:
            async for page in pages:
                yield page

    async def rows(self, query: Query = Query()) -> AsyncGenerator[StoredEntry]:
        """Entries in seq order with the stored event text, streamed so memory stays constant."""
        async with aclosing(self.pages(query)) as pages:
            async for page in pages:
                for row in page:
                    yield StoredEntry(*row)

    async def entries(self, query: Query = Query()) -> AsyncGenerator[LedgerEntry]:
        """Entries in seq order, parsed."""
        loads = json.loads
        async with aclosing(self.pages(query)) as pages:
            async for page in pages:
                for seq, digest, prev, recorded_at, text in page:
                    try:
                        event = loads(text)
                    except ValueError:
                        raise UnreadableEntry(seq, "is not JSON") from None
                    yield LedgerEntry(seq, digest, prev, recorded_at, event)

    async def verify(self, keys: Mapping[str, Ed25519PublicKey] | None = None) -> VerifyReport:
        """Recompute the whole chain and check every signed checkpoint, with the trusted ``keys``
        (by key id; default: the ledger's own key, if this process has it).

        The signer's own record of its last checkpoint counts as one more: a
        database whose checkpoints end before it lost some.
        """
        if keys is None and self.signer is not None:
            keys = {self.signer.key_id: self.signer.public_key}
        stored = await self.checkpoints()
        try:
            recorded = self.notary.recorded() if self.notary else None
        except SignerRefused as exc:  # the signer says so loudly when it next signs
            log.warning("ledger verify: %s", exc)
            recorded = None
        if recorded and recorded.digest() not in {c.digest() for c in stored}:
            stored.append(recorded)
        verifier = ChainVerifier(stored, keys, trusted=keys is not None, policy=self.policy)
        async with aclosing(scan.pages(self.engine, Query(), columns=scan.INDEXED)) as pages:
            async for page in pages:
                if not verifier.feed_page(page):
                    break
        return verifier.finish()
