"""Data of the key registry's events, which the ledger itself records (source
``/liaison/ledger``, on no stream): the keys publishers sign events with and the ledger signs
checkpoints with, their validity windows and revocations. A bundle carries them, so an offline
verifier checks every signed event against the registry as it stood when it was recorded
(docs/provenance.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from schemas.alerts import FrozenModel, Name, Text, Timestamp, UnitId
from schemas.limits import at_most

KeyId = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._/-]+$")
]
"""A key's DSSE ``keyid``: ``<publisher>/<key name>``, or ``ledger/<fingerprint>``."""
RawKey = Annotated[str, StringConstraints(max_length=44, pattern=r"^[A-Za-z0-9+/]{43}=$")]
"""Base64 of an Ed25519 public key's 32 raw bytes."""


class KeyRegistered(FrozenModel):
    """``key.registered``: a key (or a new version of its terms) enters the registry."""

    keyid: KeyId = Field(description="The DSSE keyid signatures name.")
    purpose: Literal["publisher", "checkpoint"] = Field(
        description="publisher: signs a publisher's events; checkpoint: the ledger's own key."
    )
    public_key: RawKey = Field(description="Base64 of the Ed25519 public key's 32 raw bytes.")
    publisher: Name | None = Field(None, description="The publisher principal (publisher keys).")
    units: Annotated[tuple[UnitId, ...], at_most(1000)] = Field(
        (), max_length=1000, description="Units the publisher may sign for."
    )
    signatures: Literal["required", "optional"] | None = Field(
        None, description="The publisher's policy when registered."
    )
    not_before: Timestamp | None = Field(None, description="Valid from (absent: always).")
    not_after: Timestamp | None = Field(None, description="Valid until (absent: always).")


class KeyRevoked(FrozenModel):
    """``key.revoked``: from ``revoked_at`` on, nothing signed with the key is accepted."""

    keyid: KeyId = Field(description="The key revoked.")
    revoked_at: Timestamp = Field(description="Entries recorded from then on may not use it.")
    reason: Text | None = Field(None, description="Why, as the operator configured it.")
