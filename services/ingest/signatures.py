"""Ingest verifies a publisher's signatures before it accepts (docs/provenance.md): against the
configured key registry, now, with the caller's keys and policy only."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

from services.core.dsse import SignatureInvalid
from services.core.keyring import Registry
from services.ingest.intake import Rejection

_SIGNED = b'"dssematerial"'


def refused_signatures(
    texts: Sequence[bytes],
    registry: Registry,
    publisher: str,
    batch: bool,
    now: datetime | None = None,
) -> list[Rejection]:
    """A located rejection per event (canonical text) whose signature is missing where the
    publisher requires one, or does not hold; empty when all pass."""
    if not registry.keys and not registry.required:
        return []  # nothing configured: unsigned events cost nothing more
    now = now or datetime.now(UTC)
    required = publisher in registry.required
    refused = []
    for index, text in enumerate(texts):
        if not required and _SIGNED not in text:
            continue
        try:
            registry.check(json.loads(text), now, publisher)
        except SignatureInvalid as exc:
            refused.append(Rejection(index if batch else None, exc.field, str(exc)))
    return refused
