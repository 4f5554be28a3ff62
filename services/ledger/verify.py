"""Recomputing the chain and checking signed checkpoints — pure, so an auditor's
offline bundle and the live database are verified by the same code.

What is caught: an edited entry (its hash no longer matches), a deleted
entry (a gap in seq, or a broken ``prev_hash`` link), a chain rewritten with
recomputed hashes up to a signed checkpoint (the checkpoint's head no longer
matches), a truncated tail (a checkpoint covers entries that are gone), and
an indexed column that no longer says what the hashed text says
(:mod:`services.ledger.columns`).
Not caught without an outside copy: entries appended after the last
checkpoint and then removed — checkpoints are signed every N entries or T
seconds, which bounds that window.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.ledger import columns
from services.ledger.chain import GENESIS, entry_hash
from services.ledger.signing import checkpoint_message, key_id, signature_valid

IndexedRow = tuple[int, str, str, str, str, str, str, str, str | None, str]
"""``(seq, hash, prev_hash, recorded_at, event, source, event_id, type, subject, event_time)``."""


class Row(Protocol):
    """What verification reads of an entry."""

    @property
    def seq(self) -> int: ...
    @property
    def recorded_at(self) -> str: ...
    @property
    def event(self) -> str: ...
    @property
    def prev_hash(self) -> str: ...
    @property
    def hash(self) -> str: ...


@dataclass(frozen=True, slots=True)
class _Entry:
    seq: int
    recorded_at: str
    event: str
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed statement: the first ``size`` entries end in ``head_hash``."""

    size: int
    head_hash: str
    signed_at: str
    key_id: str
    signature: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form (bundles, API)."""
        return {"size": self.size, "head_hash": self.head_hash, "signed_at": self.signed_at,
                "key_id": self.key_id, "signature": self.signature}  # fmt: skip


@dataclass(slots=True)
class VerifyReport:
    """Outcome of a verification."""

    ok: bool = True
    count: int = 0
    head: str = GENESIS
    first_bad_seq: int | None = None
    checkpoints: int = 0
    problems: list[str] = field(default_factory=list)

    def fail(self, seq: int, problem: str) -> None:
        """Record a problem; the first one names the first bad seq."""
        if self.ok:
            self.ok, self.first_bad_seq = False, seq
        self.problems.append(f"seq {seq}: {problem}")

    def to_dict(self) -> dict[str, Any]:
        """The public shape of ``GET /v1/ledger/verify``."""
        return {"ok": self.ok, "count": self.count, "head": self.head,
                "first_bad_seq": self.first_bad_seq, "checkpoints": self.checkpoints,
                "problems": self.problems}  # fmt: skip


class ChainVerifier:
    """Feed entries in seq order, then :meth:`finish`."""

    def __init__(
        self, checkpoints: Sequence[Checkpoint], public_key: Ed25519PublicKey | None
    ) -> None:
        self.report = VerifyReport()
        self._prev = GENESIS
        self._expected = 1
        self._signed = {c.size: c for c in checkpoints}
        self._check_signatures(checkpoints, public_key)

    def _check_signatures(
        self, checkpoints: Sequence[Checkpoint], key: Ed25519PublicKey | None
    ) -> None:
        if key is None:
            return
        for c in checkpoints:
            message = checkpoint_message(c.size, c.head_hash, c.signed_at)
            if c.key_id != key_id(key) or not signature_valid(key, message, c.signature):
                self.report.fail(
                    c.size, "checkpoint signature does not verify with the ledger's key"
                )

    def feed(self, row: Row) -> bool:
        """Check one entry; False once the chain is broken (stop feeding)."""
        if row.seq != self._expected:
            self.report.fail(self._expected, f"missing: the chain jumps to seq {row.seq}")
            return False
        if row.prev_hash != self._prev:
            self.report.fail(row.seq, "prev_hash does not match the previous entry's hash")
            return False
        if entry_hash(self._prev, row.seq, row.recorded_at, row.event) != row.hash:
            self.report.fail(row.seq, "hash does not match the entry's content")
            return False
        signed = self._signed.get(row.seq)
        if signed is not None:
            if signed.head_hash != row.hash:
                self.report.fail(
                    row.seq, "differs from the signed checkpoint: entries up to here were rewritten"
                )
                return False
            self.report.checkpoints += 1
        self._prev, self._expected = row.hash, row.seq + 1
        self.report.count, self.report.head = row.seq, row.hash
        return True

    def feed_page(self, rows: Iterable[IndexedRow]) -> bool:
        """Check entries of the database with their indexed columns, in order; False once broken.

        The hot loop of verification: an entry that links, hashes right and
        is not a checkpoint costs one SHA-256 and a few comparisons (any other
        goes through :meth:`feed`, which names what is wrong); then its
        columns are checked against its text (:func:`columns.agree`), so that
        a column edited behind the hash — a seizure's ``type`` changed to hide
        it from statistics — names its seq.
        """
        prev, expected, signed = self._prev, self._expected, self._signed
        sha256, fromhex, agree = hashlib.sha256, bytes.fromhex, columns.agree
        for seq, digest, prev_hash, recorded_at, text, source, event_id, kind, subject, at in rows:
            if (
                seq != expected
                or prev_hash != prev
                or seq in signed
                or sha256(fromhex(prev) + f"{seq}\n{recorded_at}\n".encode() + text.encode())
                .hexdigest() != digest
            ):  # fmt: skip
                self._at(prev, expected)
                if not self.feed(_Entry(seq, recorded_at, text, prev_hash, digest)):
                    return False
            if not agree(text, source, event_id, kind, subject, at):
                self._at(prev, seq)  # the chain holds up to the entry before
                names = ", ".join(columns.disagreement(text, source, event_id, kind, subject, at))
                problem = f"indexed column(s) {names} disagree with the hashed event"
                self.report.fail(
                    seq, problem + ": readers filtering on them would miss or misfile it"
                )
                return False
            prev, expected = digest, seq + 1
        self._at(prev, expected)
        return True

    def _at(self, head: str, expected: int) -> None:
        self._prev, self._expected = head, expected
        self.report.count, self.report.head = expected - 1, head

    def finish(self) -> VerifyReport:
        """Checkpoints beyond the last entry mean the tail was cut off."""
        beyond = [size for size in self._signed if size > self.report.count]
        if beyond and self.report.ok:
            self.report.fail(
                self.report.count + 1,
                f"truncated: a signed checkpoint covers {max(beyond)} entries, the ledger has {self.report.count}",
            )
        return self.report
