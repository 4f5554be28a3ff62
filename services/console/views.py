"""What the inbox page shows of each delivery, computed from the inbox as the API serves it.

Pure: the deliveries come from :meth:`RedisInbox.list` (the unit's own view of each alert,
exactly as ``GET /v1/units/{unit}/alerts`` returns it) and the clock is passed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from services.console.i18n import N_, NP_
from services.notifier.model import Delivery, Notice

SHOWS = ("open", "acknowledged", "escalated", "notices", "all")
"""The inbox's filters, in the order of its tabs (kept in the URL as ``?show=``)."""
SHOW_LABELS = {
    "open": NP_("tab", "Open"),
    "acknowledged": NP_("tab", "Acknowledged"),
    "escalated": NP_("tab", "Escalated"),
    "notices": NP_("tab", "Notices"),
    "all": NP_("tab", "All"),
}
"""Tab labels (translated with the context ``tab``: a list, not one alert's state)."""
SEVERITY_LABELS = {"flash": N_("Flash"), "urgent": N_("Urgent"), "routine": N_("Routine")}
REASON_LABELS = {
    "neighbour": N_("neighbour"),
    "corridor": N_("corridor"),
    "counterpart": N_("counterpart"),
    "coordinator": N_("coordinator"),
    "explicit": N_("named"),
}
REASON_HINTS = {
    "neighbour": N_("Your unit neighbours the unit that raised it."),
    "corridor": N_("Your unit lies on the trafficking corridor of its route."),
    "counterpart": N_("Your unit is the counterpart across the border."),
    "coordinator": N_("Your unit coordinates its country."),
    "explicit": N_("The originator named your unit."),
}
SUBSTANCE_LABELS = {
    "heroin": N_("heroin"),
    "hashish": N_("hashish"),
    "opium": N_("opium"),
    "cannabis": N_("cannabis"),
    "poppy straw": N_("poppy straw"),
    "cocaine": N_("cocaine"),
    "methamphetamine": N_("methamphetamine"),
    "amphetamine": N_("amphetamine"),
    "mephedrone": N_("mephedrone"),
    "tramadol": N_("tramadol"),
    "acetic anhydride": N_("acetic anhydride"),
}
"""The substances the agency adapters know (others are shown as stored)."""
MEASURE_LABELS = {"kg": N_("kg"), "l": N_("l"), "units": N_("units")}
STATE_LABELS = {
    "open": N_("open"),
    "updated": N_("updated"),
    "closed": N_("closed"),
    "cancelled": N_("cancelled"),
}


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 timestamp of the inbox, or None."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def countries(value: Any) -> list[str]:
    """``"UZ,TJ"`` → ``["UZ", "TJ"]``."""
    return [c for c in str(value).split(",") if c] if value else []


@dataclass(frozen=True, slots=True)
class Row:
    """One delivery as the inbox shows it."""

    alert_id: str
    severity: str
    tlp: str
    releasable: list[str]
    view: str
    persons_withheld: int
    summary: str
    origin: str
    reasons: list[str]
    state: str
    delivered_at: datetime | None
    deadline: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    escalated: bool
    waiting: timedelta | None
    """How long it has waited for acknowledgement (None once acknowledged or settled)."""
    overdue: bool

    @property
    def open(self) -> bool:
        """Still to acknowledge: neither acknowledged nor closed or cancelled."""
        return self.acknowledged_at is None and self.state not in ("closed", "cancelled")


def row_of(delivery: Delivery, now: datetime) -> Row:
    """A delivery of the inbox as a row."""
    event = delivery.get("event") or {}
    data = event.get("data") or {}
    acknowledged_at = parse_time(delivery.get("acknowledged_at"))
    delivered_at = parse_time(delivery.get("delivered_at"))
    deadline = parse_time(delivery.get("deadline"))
    state = str(delivery.get("state") or "open")
    settled = acknowledged_at is not None or state in ("closed", "cancelled")
    waiting = None if settled or delivered_at is None else now - delivered_at
    return Row(
        alert_id=str(delivery.get("alert_id")),
        severity=str(delivery.get("severity") or data.get("severity") or "routine"),
        tlp=str(event.get("tlp") or "amber"),
        releasable=countries(event.get("releasableto")),
        view=str(delivery.get("view") or "full"),
        persons_withheld=int(data.get("persons_count") or 0) if "persons" not in data else 0,
        summary=str(data.get("summary") or ""),
        origin=str(delivery.get("alert_source") or ""),
        reasons=[str(r) for r in delivery.get("reasons") or []],
        state=state,
        delivered_at=delivered_at,
        deadline=deadline,
        acknowledged_at=acknowledged_at,
        acknowledged_by=delivery.get("acknowledged_by"),
        escalated=bool(delivery.get("escalated")),
        waiting=waiting,
        overdue=waiting is not None and deadline is not None and now > deadline,
    )


def matches(row: Row, show: str) -> bool:
    """Whether a row belongs to a tab."""
    if show == "open":
        return row.open
    if show == "acknowledged":
        return row.acknowledged_at is not None
    if show == "escalated":
        return row.escalated
    return show == "all"


@dataclass(frozen=True, slots=True)
class Inbox:
    """One tab of a unit's inbox, with the count of every tab."""

    show: str
    rows: list[Row]
    notices: list[Notice]
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def open_count(self) -> int:
        """Deliveries still to acknowledge (the page title says it)."""
        return self.counts.get("open", 0)


def build_inbox(
    deliveries: Sequence[Delivery],
    notices: Sequence[Notice],
    show: str,
    now: datetime,
) -> Inbox:
    """The rows of one tab, newest first (the inbox's order)."""
    rows = [row_of(d, now) for d in deliveries]
    counts = {s: sum(matches(r, s) for r in rows) for s in SHOWS if s != "notices"}
    counts["notices"] = len(notices)
    shown = [r for r in rows if matches(r, show)]
    return Inbox(show, shown, list(notices) if show == "notices" else [], counts)
