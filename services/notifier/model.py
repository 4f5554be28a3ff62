"""What an inbox holds, as the notifier stores and shows it: the documents that travel as JSON
between the handlers, the inboxes, the HTTP API, the console and ``liaison inbox --json``.

``TypedDict`` rather than models: they are read from and written to Redis as JSON on the hot
path, and a type costs nothing there. The HTTP API's response models are built from them, so
``/openapi.json`` describes every field (docs/http-api.md, "Documents it returns").
"""

from __future__ import annotations

from typing import Any

from typing_extensions import TypedDict


class StoredAck(TypedDict):
    """An acknowledgement as stored beside the delivery."""

    acknowledged_at: str
    acknowledged_by: str | None
    """The authenticated principal (``cli:<OS user>`` from the command line)."""
    person: str | None
    officer: str | None
    """The name the officer typed."""
    note: str | None


class Acknowledgement(TypedDict):
    """Who acknowledged a delivery, as the inbox shows it."""

    principal: str | None
    person: str | None
    officer: str | None
    note: str | None
    acknowledged_at: str | None


class Escalation(TypedDict):
    """A delivery left unacknowledged past its deadline, told to the coordinators."""

    escalated_at: str
    deadline: str
    coordinators: list[str]
    reminder: str


class Notice(Escalation):
    """An escalation notice in a coordinator's inbox."""

    alert_id: str
    alert_source: str
    unit: str
    """The unit that has not acknowledged."""


class Delivery(TypedDict):
    """One inbox entry: the alert as this unit may see it, why it came, and what became of it."""

    alert_id: str
    alert_source: str
    event: dict[str, Any]
    """The CloudEvent in this unit's view (non-nominal: ``data.persons`` removed)."""
    reasons: list[str]
    view: str
    severity: str
    delivered_at: str
    deadline: str
    acknowledged_at: str | None
    acknowledged_by: str | None
    acknowledgement: Acknowledgement | None
    escalated: bool
    escalation: Escalation | None
    state: str
    """``open``, ``updated``, ``cancelled`` or ``closed``."""
    changes: list[dict[str, Any]]
    """The latest changes (``alert.updated``/``cancelled``/``closed``) in this unit's view."""
    changes_total: int
    webhooks: list[dict[str, Any]]
    """Each webhook endpoint's outcome for this delivery."""


class AckedDelivery(Delivery):
    """The answer to an acknowledgement: the delivery with its unit."""

    unit: str
