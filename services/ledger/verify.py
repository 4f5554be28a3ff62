"""Recomputing the chain and checking signed checkpoints — pure, so an auditor's
offline bundle and the live database are verified by the same code.

What is caught: an edited entry (its hash no longer matches), a deleted
entry (a gap in seq, or a broken ``prev_hash`` link), a chain rewritten with
recomputed hashes up to a signed checkpoint (the checkpoint's head no longer
matches), a truncated tail (a checkpoint covers entries that are gone), an
indexed column that no longer says what the hashed text says
(:mod:`services.ledger.columns`), and checkpoints deleted or forged
(:func:`services.ledger.checkpoints.problems`: each signed by a trusted key,
chained to the one before, none further apart than ``CHECKPOINT_EVERY``).
Entries after the last checkpoint are allowed only as the signer leaves them:
fewer than ``CHECKPOINT_EVERY``, none older than twice ``CHECKPOINT_INTERVAL``
— and none in a bundle, which must end at a signed checkpoint.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.ledger import checkpoints as rules
from services.ledger import columns
from services.ledger.chain import GENESIS, entry_hash
from services.ledger.checkpoints import Checkpoint, Policy

__all__ = ["ChainVerifier", "Checkpoint", "VerifyReport"]

DEFAULT_POLICY = Policy()

IndexedRow = tuple[int, str, str, str, str, str | None]
"""``(seq, hash, prev_hash, recorded_at, event, index)``: a database entry with its indexed
columns as one text (:data:`services.ledger.columns.INDEX_SQL`)."""


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


@dataclass(slots=True)
class VerifyReport:
    """Outcome of a verification."""

    ok: bool = True
    count: int = 0
    head: str = GENESIS
    first_bad_seq: int | None = None
    checkpoints: int = 0
    problems: list[str] = field(default_factory=list)
    trusted_keys: list[str] = field(default_factory=list)
    """Ids of the keys the signatures were checked against, trusted by the verifier; empty: the
    origin is unverified (no such key, or only the one a bundle carries)."""
    unsigned: int = 0
    """Entries after the last signed checkpoint."""

    @property
    def origin_verified(self) -> bool:
        """Whether a key the verifier trusts vouches for these entries (vacuous when empty)."""
        return bool(self.trusted_keys) or (self.count == 0 and self.checkpoints == 0)

    def fail(self, seq: int, problem: str) -> None:
        """Record a problem; the report names the lowest bad seq."""
        if self.ok or (self.first_bad_seq is not None and seq < self.first_bad_seq):
            self.first_bad_seq = seq
        self.ok = False
        self.problems.append(f"seq {seq}: {problem}")

    def to_dict(self) -> dict[str, Any]:
        """The public shape of ``GET /v1/ledger/verify``."""
        return {
            "ok": self.ok,
            "count": self.count,
            "head": self.head,
            "first_bad_seq": self.first_bad_seq,
            "checkpoints": self.checkpoints,
            "problems": self.problems,
            "origin_verified": self.origin_verified,
            "trusted_keys": self.trusted_keys,
            "unsigned": self.unsigned,
        }


class ChainVerifier:
    """Feed entries in seq order, then :meth:`finish`.

    ``keys``: the public keys signatures are checked with, by key id (None:
    not checked — nothing to check them with); ``trusted``: whether the
    verifier trusts them (an auditor's own copy, the ledger's own key file),
    rather than taking them from what it verifies. ``policy``: the signing
    policy to hold the unsigned tail to when no v2 checkpoint states one.
    ``bundle``: an export, which must end at a signed checkpoint. ``now``: the
    moment the tail's age is measured at.
    """

    def __init__(
        self,
        checkpoints: Sequence[Checkpoint],
        keys: Mapping[str, Ed25519PublicKey] | None,
        *,
        trusted: bool = False,
        policy: Policy = DEFAULT_POLICY,
        bundle: bool = False,
        now: datetime | None = None,
    ) -> None:
        ordered = sorted(checkpoints, key=lambda c: c.size)
        self.report = VerifyReport(trusted_keys=sorted(keys) if keys and trusted else [])
        for seq, problem in rules.problems(ordered, keys):
            self.report.fail(seq, problem)
        self._prev = GENESIS
        self._expected = 1
        self._signed = {c.size: c for c in ordered}
        self._last = ordered[-1] if ordered else None
        self._policy = (self._last.policy if self._last else None) or policy
        self._bundle, self._now = bundle, now or datetime.now(UTC)
        self._tail_start = (self._last.size if self._last else 0) + 1
        self._tail_recorded_at: str | None = None
        # entries the hot loop hands to feed(): the checkpoints' heads, the first unsigned entry
        self._watched = {*self._signed, self._tail_start}
        # database rows since the last checkpoint, as (page, start, end) slices: their indexed
        # columns are checked when the next checkpoint (or the end) closes the stretch
        self._open: list[tuple[Sequence[IndexedRow], int, int]] = []
        self._keys_checked = keys is not None  # else a checkpoint's digest could be anyone's

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
        if row.seq == self._tail_start:
            self._tail_recorded_at = row.recorded_at
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

    def feed_page(self, rows: Sequence[IndexedRow]) -> bool:
        """Check a page of database entries with their indexed columns, in order; False once
        broken.

        The hot loop of verification: an entry that links, hashes right and
        is not a checkpoint costs one SHA-256 and a few comparisons (any other
        goes through :meth:`feed`, which names what is wrong). The indexed
        columns are checked per stretch between checkpoints (:meth:`_close`),
        so that a column edited behind the hash — a seizure's ``type`` changed
        to hide it from statistics — names its seq.
        """
        prev, expected, watched, signed = self._prev, self._expected, self._watched, self._signed
        sha256, fromhex = hashlib.sha256, bytes.fromhex
        first, start = (rows[0][0] if rows else 0), 0
        for seq, digest, prev_hash, recorded_at, text, _index in rows:
            if (
                seq != expected
                or prev_hash != prev
                or seq in watched
                or sha256(
                    fromhex(prev) + f"{seq}\n{recorded_at}\n".encode() + text.encode()
                ).hexdigest()
                != digest
            ):
                self._at(prev, expected)
                if not self.feed(_Entry(seq, recorded_at, text, prev_hash, digest)):
                    return False
                if seq in signed:  # the page's entries up to here close a stretch
                    self._open.append((rows, start, seq - first + 1))
                    start = seq - first + 1
                    if not self._close(signed[seq]):
                        return False
            prev, expected = digest, seq + 1
        self._at(prev, expected)
        if start < len(rows):
            self._open.append((rows, start, len(rows)))
        return True

    def _close(self, checkpoint: Checkpoint | None) -> bool:
        """Check the indexed columns of the stretch up to ``checkpoint`` (None: the unsigned tail):
        one digest against the checkpoint's, or entry by entry where it states none."""
        stretch, self._open = self._open, []
        if checkpoint is not None and checkpoint.index_hash is not None and self._keys_checked:
            digest = hashlib.sha256()  # columns.index_digest, a page slice at a time
            for page, start, end in stretch:
                digest.update("".join([row[5] or "" for row in page[start:end]]).encode())
            if digest.hexdigest() == checkpoint.index_hash:
                return True
        rows = (row for page, start, end in stretch for row in page[start:end])
        for seq, _digest, _prev, _at, text, stored in rows:
            expected = columns.index_of(text)
            if stored != expected:
                names = ", ".join(columns.differing(expected, stored))
                problem = f"indexed column(s) {names} disagree with the hashed event"
                self.report.fail(
                    seq, problem + ": readers filtering on them would miss or misfile it"
                )
                return False
        return True

    def _at(self, head: str, expected: int) -> None:
        self._prev, self._expected = head, expected
        self.report.count, self.report.head = expected - 1, head

    def finish(self) -> VerifyReport:
        """The verdict, once every entry was fed: checkpoints beyond the last entry (the tail
        was cut off), and the entries no checkpoint covers."""
        count = self.report.count
        beyond = [size for size in self._signed if size > count]
        if beyond and self.report.ok:
            self.report.fail(
                count + 1,
                f"truncated: a signed checkpoint covers {max(beyond)} entries, the ledger has {count}",
            )
        self.report.unsigned = max(count - self._tail_start + 1, 0)
        if self.report.unsigned and self.report.ok:
            self._judge_tail(self._tail_start, count)
        if self._open and self.report.ok:
            self._close(None)
        return self.report

    def _judge_tail(self, first: int, last: int) -> None:
        span = f"entries {first}-{last}" if last > first else f"entry {first}"
        if self._bundle:
            self.report.fail(
                first,
                f"the bundle does not end at a signed checkpoint: {span} "
                "unsigned (`liaison ledger export` signs the head first)",
            )
            return
        every, interval = self._policy.every, self._policy.interval
        if last - first + 1 > every:
            self.report.fail(
                first,
                f"{span} unsigned, more than CHECKPOINT_EVERY ({every}) "
                "after the last signed checkpoint: checkpoints are missing",
            )
            return
        waited = _age(self._tail_recorded_at, self._now)
        if waited is not None and waited > 2 * interval:
            self.report.fail(
                first,
                f"{span} unsigned for {waited:.0f} s, more than twice "
                f"CHECKPOINT_INTERVAL ({interval:g} s): checkpoints are "
                "missing, or the ledger is not running to sign them",
            )


def _age(recorded_at: str | None, now: datetime) -> float | None:
    if recorded_at is None:
        return None
    try:
        return (now - datetime.fromisoformat(recorded_at)).total_seconds()
    except ValueError:  # the hash vouches for it: only a writer other than the ledger makes that
        return None
