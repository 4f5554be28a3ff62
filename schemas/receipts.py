"""Data of the events Liaison Exchange itself emits (sources ``/liaison/<component>``).

The notifier records each delivery, acknowledgement and escalation as an event
on the streams, so the ledger holds what was said to whom and who answered.
Each names its alert by ``alert_id`` and ``alert_source`` (the raising unit):
two units' alerts may share an id (:class:`~schemas.alerts.AlertRef`). The
events' own ids embed both, e.g. ``delivered/<alert source>/<alert id>/<unit>``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from schemas.alerts import (
    MIN_ONE,
    FrozenModel,
    Line,
    Name,
    Ref,
    Text,
    Timestamp,
    UnitId,
    at_least_one,
)
from schemas.limits import MAX_COUNT, at_most
from schemas.vocabulary import Reason, Severity, View

_ALERT_SOURCE = (
    "The unit that raised the alert: with alert_id it names the alert (ids are unique per "
    "source only). Absent only in events recorded before it was added."
)


class AlertDelivered(FrozenModel):
    """``alert.delivered``: one recipient's inbox received an alert (one event per recipient)."""

    alert_id: Ref = Field(description="Id of the alert.raised event.")
    alert_source: UnitId = Field(
        description="The unit that raised the alert: with alert_id it names the alert."
    )
    recipient: UnitId = Field(description="The unit that received it.")
    reasons: Annotated[tuple[Reason, ...], at_most(len(Reason)), at_least_one("reason")] = Field(
        json_schema_extra=MIN_ONE,
        max_length=len(Reason),
        description="Why it received it: neighbour, corridor, counterpart, coordinator, explicit.",
    )
    view: View = Field(description="full, or non-nominal (persons' identities withheld).")
    delivered_at: Timestamp = Field(description="When the recipient's inbox was written.")


class AlertAcknowledged(FrozenModel):
    """``alert.acknowledged``: an officer of the receiving unit has taken note of the alert."""

    alert_id: Ref = Field(description="Id of the alert.raised event.")
    alert_source: UnitId | None = Field(None, description=_ALERT_SOURCE)
    unit: UnitId = Field(description="The acknowledging unit.")
    principal: Name | None = Field(
        None,
        description="Who was authenticated: the API principal's configured name, or "
        "'cli:<OS user>' for `liaison ack`. Absent only in events recorded before it was.",
    )
    person: Name | None = Field(
        None, description="The person the configuration names for that principal, if any."
    )
    officer: Name | None = Field(
        None, description="The name the officer typed, if any (not verified)."
    )
    note: Text | None = Field(None, description="The officer's remark (up to 2000 characters).")
    acknowledged_at: Timestamp = Field(description="When it was acknowledged.")


class AlertEscalated(FrozenModel):
    """``alert.escalated``: a delivery was still unacknowledged at its deadline."""

    alert_id: Ref = Field(description="Id of the alert.raised event.")
    alert_source: UnitId | None = Field(None, description=_ALERT_SOURCE)
    unit: UnitId = Field(description="The unit that did not acknowledge in time.")
    severity: Severity = Field(description="The alert's severity, which set the deadline.")
    deadline: Timestamp = Field(description="The acknowledgement deadline that passed.")
    coordinator: UnitId | None = Field(
        None, description="The national coordinator notified, if any."
    )
    escalated_at: Timestamp = Field(description="When the delivery was escalated.")


class AlertWebhookFailed(FrozenModel):
    """``alert.webhook_failed``: a unit's webhook endpoint never took a delivery."""

    alert_id: Ref = Field(description="Id of the alert.raised event.")
    alert_source: UnitId | None = Field(None, description=_ALERT_SOURCE)
    event_id: Ref = Field(description="Id of the event that was being delivered.")
    unit: UnitId = Field(description="The unit whose endpoint failed.")
    webhook_id: Name = Field(description="The webhook-id sent with every attempt.")
    endpoint: Line = Field(
        description="The endpoint's configured name (default: its URL without credentials, "
        "query or fragment)."
    )
    attempts: int = Field(ge=0, le=MAX_COUNT, description="Attempts made.")
    last_status: int | None = Field(
        None, ge=100, le=599, description="Last HTTP status, if any answer came."
    )
    last_error: Text | None = Field(None, description="Last error, if no answer came.")
    reason: Text | None = Field(None, description="Why delivery was given up.")
    queued_at: Timestamp = Field(description="When the delivery was queued.")
    failed_at: Timestamp = Field(description="When it was given up.")
