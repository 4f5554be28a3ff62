"""The ledger's signer, which signs only heads that extend what it signed before.

An insider with the database can delete checkpoint rows and rewrite the
chain with recomputed hashes; a signer that trusted the database would then
sign the forgery with the real key. So the signer keeps the last checkpoint
it signed outside the database, beside its key (``<key>.last-checkpoint.json``,
mode 0600), and before every append and every signature checks that the
database still holds that checkpoint — or later ones this key signed, chained
to it — and that the chain from it to the head recomputes. If not, it
refuses: nothing is appended or signed (the events wait on the streams, the
claimer retrying them as during an outage), the log says why at ERROR, and
readiness stays red until the database is restored.

Checkpoints are signed in the append's own transaction, at every
``CHECKPOINT_EVERY`` entries (mid-batch if need be, so that no unsigned run
is longer), and at its end once ``CHECKPOINT_INTERVAL`` has passed since the
last one (or when forced: on stop, before an export).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.core.bus import Unavailable
from services.ledger import tables
from services.ledger.chain import GENESIS, entry_hash
from services.ledger.checkpoints import Checkpoint, Policy, signed
from services.ledger.columns import index_of, index_text
from services.ledger.records import utc_text
from services.ledger.signing import Signer, signature_valid

log = logging.getLogger(__name__)
PAGE = 2000
LOG_EVERY = 60.0  # seconds between repeats of the same refusal in the log


class SignerRefused(Unavailable):
    """The database no longer extends what this ledger signed: no append, no signature."""


@dataclass(slots=True)
class Signing:
    """What an append signs: checkpoints, and the running digest of the index texts of the entries
    after the last of them (:func:`~services.ledger.columns.index_digest`, one entry at a time)."""

    checkpoints: list[Checkpoint]
    index: Any  # hashlib's sha256 object


class Notary:
    """Checks the database against the signer's own record, and signs checkpoints."""

    def __init__(self, signer: Signer, policy: Policy) -> None:
        self.signer, self.policy = signer, policy
        self.refusal: str | None = None
        """Why the signer refuses now (readiness is red), or None."""
        self.unrecorded: str | None = None
        """Why the last signed checkpoint could not be recorded beside the key, or None."""
        self._trusted: Checkpoint | None = None  # the last checkpoint known to be ours and stored
        self._loaded = False
        self._verified: tuple[int, str] | None = None  # (seq, hash) the chain was checked up to
        # columns.index_digest of the entries after _trusted up to _verified, running
        self._index = hashlib.sha256()
        self._to_record: Checkpoint | None = None
        self._recorder: asyncio.Task[None] | None = None
        self._logged: tuple[str | None, float] = (None, 0.0)

    @property
    def record_path(self) -> Path | None:
        """Where the last signed checkpoint is recorded (beside the key)."""
        return self.signer.record_path

    def recorded(self) -> Checkpoint | None:
        """The last checkpoint this ledger recorded as signed, read from its file."""
        path = self.record_path
        if path is None or not path.exists():
            return None
        try:
            return Checkpoint.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise SignerRefused(
                f"{path}: the record of the last signed checkpoint is unreadable "
                f"({exc}); restore it, or remove it to trust the database's last "
                "checkpoint signed by this key"
            ) from None

    async def base(self, conn: AsyncConnection, seq: int, head: str) -> Checkpoint | None:
        """The last signed checkpoint, once the database is shown to extend it up to ``(seq, head)``.

        Raises :class:`SignerRefused` (an :class:`Unavailable`) when it does not.
        """
        try:
            trusted = await self._catch_up(conn)
            await self._check_extends(conn, trusted, seq, head)
        except SignerRefused as exc:
            self._refuse(str(exc))
            raise
        if self.refusal is not None:
            log.warning(
                "ledger: the database extends the last signed checkpoint again; "
                "appending and signing resume"
            )
            self.refusal = None
        return trusted

    def due(
        self,
        base: Checkpoint | None,
        head: tuple[int, str],
        rows: Sequence[tuple[Any, ...]],
        now: datetime,
        *,
        force: bool = False,
    ) -> Signing:
        """The checkpoints to sign now: ``head`` is the chain's end before ``rows`` (the chained
        rows being appended: ``append.Row``)."""
        plan = Signing([], self._index.copy())
        last, at, every = base, utc_text(now), self.policy.every

        def sign(size: int, digest: str) -> None:
            nonlocal last
            last = signed(
                self.signer.sign,
                self.signer.key_id,
                (size, digest),
                at,
                last,
                self.policy,
                plan.index.hexdigest(),
            )
            plan.checkpoints.append(last)
            plan.index = hashlib.sha256()

        if head[0] - (last.size if last else 0) >= every:  # the policy was lowered, say
            sign(*head)
        for row in rows:
            # append.Row: (seq, source, event_id, type, subject, event_time, …, hash)
            plan.index.update(index_text(row[2], row[1], row[3], row[5], row[4]).encode())
            if row[0] - (last.size if last else 0) >= every:
                sign(row[0], row[-1])
        end = (rows[-1][0], rows[-1][-1]) if rows else head
        if end[0] > (last.size if last else 0) and (
            force or last is None or _age(last.signed_at, now) >= self.policy.interval
        ):
            sign(*end)
        return plan

    async def committed(self, head: tuple[int, str], plan: Signing) -> None:
        """After the append's commit: the chain is ours up to ``head``; record what was signed."""
        self._verified, self._index = head, plan.index
        if plan.checkpoints:
            self._trusted = plan.checkpoints[-1]
            await self._record(plan.checkpoints[-1])

    async def _catch_up(self, conn: AsyncConnection) -> Checkpoint | None:
        if not self._loaded:
            self._trusted, self._loaded = self.recorded(), True
            if self._trusted is None:
                return await self._adopt_stored(conn)
        mine, last = self._trusted, await _last_checkpoint(conn)
        if mine is None:
            return await self._adopt_stored(conn)
        if last is None or last.size < mine.size:
            raise SignerRefused(
                f"checkpoints were deleted: this ledger last signed the first {mine.size} entries "
                f"(head {mine.head_hash}, {mine.signed_at}); the database's last checkpoint covers "
                f"{last.size if last else 0}"
            )
        if last.size == mine.size:
            if last.digest() != mine.digest():
                raise SignerRefused(
                    f"the checkpoint of {mine.size} entries in the database is not "
                    "the one this ledger signed"
                )
            return mine
        # later ones: signed with this key by another ledger process (or by this one, which
        # could not record them), each chained to the one before
        newer = await _checkpoints_from(conn, mine.size)
        chain_ok = newer[0].digest() == mine.digest() and all(
            c.version == 2 and c.prev == before.digest() and self._ours(c)
            for before, c in itertools.pairwise(newer)
        )
        if not chain_ok:
            raise SignerRefused(
                f"the checkpoints after the first {mine.size} entries in the "
                "database are not a chain this key signed"
            )
        self._trusted, self._verified = newer[-1], None
        await self._record(newer[-1])
        return newer[-1]

    async def _adopt_stored(self, conn: AsyncConnection) -> Checkpoint | None:
        """No record beside the key yet (first run of this version, a new key): the database's
        last checkpoint, if this key signed it."""
        last = await _last_checkpoint(conn)
        if last is None:
            return None
        if not self._ours(last):
            raise SignerRefused(
                f"the database's last checkpoint ({last.size} entries) is not "
                "signed by this ledger's key"
            )
        log.warning(
            "ledger: no record of the last signed checkpoint at %s; trusting the "
            "database's (%d entries, signed by this key)",
            self.record_path,
            last.size,
        )
        self._trusted, self._verified = last, None
        await self._record(last)
        return last

    def _ours(self, checkpoint: Checkpoint) -> bool:
        return checkpoint.key_id == self.signer.key_id and signature_valid(
            self.signer.public_key, checkpoint.message(), checkpoint.signature
        )

    async def _check_extends(
        self, conn: AsyncConnection, base: Checkpoint | None, seq: int, head: str
    ) -> None:
        """The chain from ``base`` (or from where this process last checked it) recomputes up to
        ``(seq, head)``."""
        if self._verified == (seq, head):
            return
        if self._verified is not None and seq < self._verified[0]:
            raise SignerRefused(
                f"entries were deleted: this ledger saw the chain reach seq "
                f"{self._verified[0]}, the database ends at {seq}"
            )
        start = (base.size, base.head_hash) if base else (0, GENESIS)
        if seq < start[0]:
            raise SignerRefused(
                f"entries were deleted: this ledger signed {start[0]} entries, "
                f"the database has {seq}"
            )
        if self._verified is not None and start[0] <= self._verified[0] <= seq:
            start = self._verified
        else:
            self._index = hashlib.sha256()  # the index texts since the base, read again below
        at, prev = start
        while at < seq:
            sql = (
                "SELECT seq, hash, prev_hash, recorded_at, event FROM ledger_entries "
                f"WHERE seq >= {max(at, 1)} ORDER BY seq LIMIT {PAGE + 1}"
            )
            rows: Any = (await conn.exec_driver_sql(sql)).all()
            if at:  # the page starts with the entry checked last: it must still be that one
                if not rows or (rows[0][0], rows[0][1]) != (at, prev):
                    raise SignerRefused(
                        f"the entry at seq {at} is not the one this ledger signed "
                        "or appended: the chain was rewritten"
                    )
                rows = rows[1:]
            if not rows:
                break
            for row_seq, digest, prev_hash, recorded_at, text in rows:
                if (
                    row_seq != at + 1
                    or prev_hash != prev
                    or (entry_hash(prev, row_seq, recorded_at, text) != digest)
                ):
                    raise SignerRefused(
                        f"the chain no longer recomputes at seq {at + 1}, after "
                        f"the last signed checkpoint ({start[0]} entries)"
                    )
                index = index_of(text)  # derived from the text: the columns are not trusted here
                if index is None:
                    raise SignerRefused(f"the entry at seq {row_seq} is no event")
                self._index.update(index.encode())
                at, prev = row_seq, digest
        if (at, prev) != (seq, head):
            raise SignerRefused(f"the chain ends at seq {at}, not at the head (seq {seq})")
        self._verified = (seq, head)

    async def _record(self, checkpoint: Checkpoint) -> None:
        """Record ``checkpoint`` beside the key, in the background: the append does not wait for
        the file's fsync. A record that lags behind the database is harmless — the checkpoints
        after it are this key's, chained to it — so only the latest one is written."""
        if self.record_path is None:
            return
        self._to_record = checkpoint
        if self._recorder is None or self._recorder.done():
            self._recorder = asyncio.create_task(self._write_records(self.record_path))

    async def flush(self) -> None:
        """Wait until the last checkpoint signed is recorded (on stop)."""
        if self._recorder is not None:
            await asyncio.shield(self._recorder)

    async def _write_records(self, path: Path) -> None:
        while (checkpoint := self._to_record) is not None:
            self._to_record = None
            try:
                await asyncio.to_thread(_write_private, path, json.dumps(checkpoint.to_dict()))
            except OSError as exc:
                self.unrecorded = f"{path}: {exc.strerror or exc}"
                log.error(
                    "ledger: cannot record the last signed checkpoint at %s (%s): a database "
                    "insider could delete checkpoints unnoticed; readiness is red",
                    path,
                    exc,
                )
            else:
                self.unrecorded = None

    def _refuse(self, reason: str) -> None:
        self.refusal = reason
        if self._logged[0] != reason or time.monotonic() - self._logged[1] > LOG_EVERY:
            self._logged = (reason, time.monotonic())
            log.error(
                "ledger: REFUSING to append or sign: %s. The database no longer extends the "
                "last checkpoint this ledger signed (recorded in %s); events wait on the "
                "streams until it is restored; readiness is red",
                reason,
                self.record_path,
            )


async def _last_checkpoint(conn: AsyncConnection) -> Checkpoint | None:
    c = tables.checkpoints
    row = (await conn.execute(select(c).order_by(c.c.size.desc()).limit(1))).first()
    return None if row is None else Checkpoint.from_dict(row._mapping)


async def _checkpoints_from(conn: AsyncConnection, size: int) -> list[Checkpoint]:
    c = tables.checkpoints
    rows = (await conn.execute(select(c).where(c.c.size >= size).order_by(c.c.size))).all()
    return [Checkpoint.from_dict(row._mapping) for row in rows]


def _age(signed_at: str, now: datetime) -> float:
    return (now - datetime.fromisoformat(signed_at)).total_seconds()


def _write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically, mode 0600, durable before it returns."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
