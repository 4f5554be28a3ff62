"""Signed checkpoints: what they say, how they chain, and the rules a verifier holds them to.

A checkpoint says "the first ``size`` entries end in ``head_hash``", signed
with the ledger's Ed25519 key. Version 2 (``liaison-ledger-checkpoint/v2``)
also signs the previous checkpoint's hash — so checkpoints form a chain of
their own, and one deleted from the middle breaks it —, the policy it was
signed under (``CHECKPOINT_EVERY``, ``CHECKPOINT_INTERVAL``), so that an
offline verifier knows how far apart they may be, and the digest of the
indexed columns of the entries it covers (:mod:`services.ledger.columns`), so
that the database's columns are checked without parsing every event. Version 1 checkpoints
(before the chain) still verify; they are not linked, and no gap rule applies
to them.

The exact signed bytes (docs/ledger.md, "Signed checkpoints")::

    v1: "liaison-ledger-checkpoint/v1\\n<size>\\n<head_hash>\\n<signed_at>\\n"
    v2: "liaison-ledger-checkpoint/v2\\n<size>\\n<head_hash>\\n<signed_at>\\n<prev>\\n"
        "<every>\\n<interval_ms>\\n<index_hash>\\n"

``prev`` is :meth:`Checkpoint.digest` of the checkpoint before (v1 or v2),
64 zeros for the first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.ledger.chain import GENESIS
from services.ledger.signing import checkpoint_message, signature_valid

V2 = "liaison-ledger-checkpoint/v2"


@dataclass(frozen=True, slots=True)
class Policy:
    """Sign a checkpoint every ``every`` entries, or ``interval`` seconds after new ones."""

    every: int = 1000
    interval: float = 60.0


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed statement: the first ``size`` entries end in ``head_hash``."""

    size: int
    head_hash: str
    signed_at: str
    key_id: str
    signature: str
    version: int = 1
    prev: str | None = None
    """v2: :meth:`digest` of the checkpoint before this one (64 zeros for the first)."""
    every: int | None = None
    """v2: ``CHECKPOINT_EVERY`` when signed."""
    interval_ms: int | None = None
    """v2: ``CHECKPOINT_INTERVAL`` when signed, in milliseconds."""
    index_hash: str | None = None
    """v2: :func:`~services.ledger.columns.index_digest` of the entries after the previous
    checkpoint, up to this one."""

    def message(self) -> bytes:
        """The exact bytes its signature covers."""
        if self.version == 1:
            return checkpoint_message(self.size, self.head_hash, self.signed_at)
        return (
            f"{V2}\n{self.size}\n{self.head_hash}\n{self.signed_at}\n{self.prev}\n"
            f"{self.every}\n{self.interval_ms}\n{self.index_hash}\n"
        ).encode()

    def digest(self) -> str:
        """SHA-256 (hex) of :meth:`message`: what the next checkpoint signs as ``prev``."""
        return hashlib.sha256(self.message()).hexdigest()

    @property
    def policy(self) -> Policy | None:
        """The policy it was signed under (v2 only)."""
        if self.every is None or self.interval_ms is None:
            return None
        return Policy(self.every, self.interval_ms / 1000)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (bundles, the signer's record, the database row); v1 keeps its old shape."""
        doc: dict[str, Any] = {
            "size": self.size,
            "head_hash": self.head_hash,
            "signed_at": self.signed_at,
            "key_id": self.key_id,
            "signature": self.signature,
        }
        if self.version != 1:
            doc |= {
                "version": self.version,
                "prev": self.prev,
                "every": self.every,
                "interval_ms": self.interval_ms,
                "index_hash": self.index_hash,
            }
        return doc

    def columns(self) -> dict[str, Any]:
        """Every field, as the database row holds them."""
        return {
            "size": self.size,
            "head_hash": self.head_hash,
            "signed_at": self.signed_at,
            "key_id": self.key_id,
            "signature": self.signature,
            "version": self.version,
            "prev": self.prev,
            "every": self.every,
            "interval_ms": self.interval_ms,
            "index_hash": self.index_hash,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[Any, Any]) -> Checkpoint:
        """The inverse of :meth:`to_dict` (a database row's mapping too); ValueError if malformed."""
        try:
            checkpoint = cls(
                int(doc["size"]),
                str(doc["head_hash"]),
                str(doc["signed_at"]),
                str(doc["key_id"]),
                str(doc["signature"]),
                int(doc.get("version") or 1),
                doc.get("prev"),
                _int(doc.get("every")),
                _int(doc.get("interval_ms")),
                doc.get("index_hash"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a checkpoint: {exc!r}") from None
        if checkpoint.version not in (1, 2) or (
            checkpoint.version == 2
            and None in (checkpoint.prev, checkpoint.policy, checkpoint.index_hash)
        ):
            raise ValueError(f"not a checkpoint: version {checkpoint.version} incomplete")
        return checkpoint


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def signed(
    sign: Callable[[bytes], str],
    key_id: str,
    head: tuple[int, str],
    at: str,
    before: Checkpoint | None,
    policy: Policy,
    index_hash: str,
) -> Checkpoint:
    """A v2 checkpoint of ``head`` (size, head hash), chained to ``before``."""
    size, head_hash = head
    prev = before.digest() if before else GENESIS
    interval_ms = round(policy.interval * 1000)
    unsigned = Checkpoint(
        size, head_hash, at, key_id, "", 2, prev, policy.every, interval_ms, index_hash
    )
    return replace(unsigned, signature=sign(unsigned.message()))


def problems(
    checkpoints: Sequence[Checkpoint], keys: Mapping[str, Ed25519PublicKey] | None
) -> list[tuple[int, str]]:
    """What is wrong with a ledger's checkpoints on their own, as ``(seq, problem)``.

    ``checkpoints`` sorted by size. Each must be signed by one of ``keys`` (by
    key id; None: signatures are not checked); each v2 one must name the one
    before it as ``prev`` (a checkpoint deleted or replaced breaks the link)
    and follow it within ``every`` entries (the larger of the two's, so a
    policy changed between them is no gap).
    """
    found: list[tuple[int, str]] = []
    before: Checkpoint | None = None
    for c in checkpoints:
        key = None if keys is None else keys.get(c.key_id)
        if keys is not None and (key is None or not signature_valid(key, c.message(), c.signature)):
            found.append((c.size, "checkpoint signature does not verify with a trusted key"))
        if before is not None and c.size <= before.size:
            found.append((c.size, "two checkpoints for one size"))
        elif c.version == 2:
            if c.prev != (before.digest() if before else GENESIS):
                found.append(
                    (
                        c.size,
                        "the checkpoint chain is broken: the signed checkpoint "
                        "before this one is missing or was replaced",
                    )
                )
            allowed = max(c.every or 0, (before.every or 0) if before else 0)
            start = before.size if before else 0
            if c.size - start > allowed:
                found.append(
                    (
                        start + 1,
                        f"checkpoints are missing: entries {start + 1}-{c.size} "
                        f"have none within CHECKPOINT_EVERY ({allowed})",
                    )
                )
        before = c
    return found
