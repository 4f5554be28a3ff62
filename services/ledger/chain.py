"""The hash chain: how each ledger entry commits to everything before it.

Canonical form (what an independent verifier recomputes)::

    hash(n) = SHA-256( bytes.fromhex(prev_hash(n))
                       || UTF-8("<seq>\\n<recorded_at>\\n")
                       || UTF-8(event_json(n)) )

``prev_hash(1)`` is 64 zeros; ``event_json`` is the ``event`` column exactly
as stored: the CloudEvent as compact JSON with sorted keys, no ``null``
members, non-ASCII characters kept (``json.dumps(ev, sort_keys=True,
separators=(",", ":"), ensure_ascii=False)``). That is the form ingest
publishes on the streams (:meth:`CloudEvent.to_json`), so the ledger stores
the published text verbatim (see :mod:`services.ledger.records`). The
verifier hashes the stored text as it is, so it never has to re-serialise
anything.
"""

from __future__ import annotations

import hashlib

from schemas.events import CloudEvent

GENESIS = "0" * 64


def event_json(event: CloudEvent) -> str:
    """The canonical stored text of one event (its wire form, :meth:`CloudEvent.to_json`)."""
    return event.to_json().decode()


def entry_hash(prev_hash: str, seq: int, recorded_at: str, event_text: str) -> str:
    """SHA-256 of one entry chained to its predecessor (see the module docstring)."""
    digest = hashlib.sha256(bytes.fromhex(prev_hash))
    digest.update(f"{seq}\n{recorded_at}\n".encode())
    digest.update(event_text.encode())
    return digest.hexdigest()
