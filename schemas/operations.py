"""Operation data (``operation.opened``, ``operation.closed``): closed groups of units.

An operation is a closed user group for the length of a joint operation (WCO CENcomm's most
used feature). The unit that opens it owns it; an alert carrying the ``operation`` extension
goes to its members only, still filtered by every handling code (docs/routing.md,
"Operations"). An operation is known by its ``name``, which alerts name in their
``operation`` attribute.
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, StringConstraints, model_validator

from schemas.alerts import (
    MIN_ONE,
    FrozenModel,
    Line,
    Text,
    Timestamp,
    UnitId,
    at_least_one,
    field_error,
)
from schemas.limits import MAX_RECIPIENTS, at_most

OPERATION_PATTERN = r"^[A-Z0-9][A-Z0-9-]{1,63}$"
"""An operation's name: capitals, digits and ``-``, 2-64 characters (``OP-NORTHERN-2026``)."""

OperationName = Annotated[str, StringConstraints(max_length=64, pattern=OPERATION_PATTERN)]
"""The name that identifies an operation, as alerts carry it in ``operation``."""


class OperationOpened(FrozenModel):
    """``operation.opened``: a unit opens a closed group of units for a time."""

    name: OperationName = Field(
        description="The operation's identifier, which alerts name in their 'operation' "
        "attribute: capitals, digits and '-', 2-64 characters."
    )
    title: Line | None = Field(None, description="What the operation is called, for people.")
    purpose: Text | None = Field(None, description="Legal basis and purpose.")
    members: Annotated[tuple[UnitId, ...], at_most(MAX_RECIPIENTS), at_least_one("member unit")] = (
        Field(
            json_schema_extra=MIN_ONE,
            max_length=MAX_RECIPIENTS,
            description="The member units; alerts of the operation reach these only. The opening "
            "unit is a member whether or not it is listed.",
        )
    )
    start: Timestamp = Field(description="When it opens (RFC 3339).")
    end: Timestamp = Field(description="When it closes by itself (RFC 3339), after start.")

    @model_validator(mode="after")
    def _ends_after_start(self) -> Self:
        if self.end <= self.start:
            raise field_error(
                "OperationOpened", "end", "end_before_start", "end must be after start", self.end
            )
        return self


class OperationClosed(FrozenModel):
    """``operation.closed``: its owner closes an operation before its end."""

    name: OperationName = Field(description="The operation closed.")
    reason: Text | None = Field(None, description="Why it closed.")
