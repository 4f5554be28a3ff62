"""``liaison inbox``: a unit's deliveries for a duty officer's terminal (80 columns and up).

Each alert is a short block, summary first — what it is, how urgent, from
whom and why it came, how long it has waited and until when, who
acknowledged it, whether it was escalated — and its id whole on a line of
its own, to copy into ``liaison ack``. A coordinator's escalation notices
follow. Every value from an event or a person passes through
:func:`~services.core.terminal.safe`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console

from services.core.terminal import safe

_SEVERITY_STYLE = {"flash": "bold red", "urgent": "bold yellow", "routine": "bold"}
_CLOSED = ("closed", "cancelled")


def _when(value: object) -> str:
    """An RFC 3339 time as ``2024-03-15 08:02 UTC``."""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return safe(value)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _span(seconds: float) -> str:
    """``3d 4h``, ``2h 10m``, ``5m``, ``40s``."""
    seconds = int(max(seconds, 0))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m" if minutes else f"{secs}s"


def _since(value: object, now: datetime) -> float:
    try:
        return (now - datetime.fromisoformat(str(value))).total_seconds()
    except (ValueError, TypeError):
        return 0.0


def _summary(item: Mapping[str, Any]) -> str:
    """The latest summary: an ``alert.updated`` may have changed it."""
    summary = (item.get("event") or {}).get("data", {}).get("summary", "")
    for change in item.get("changes") or ():
        summary = (change.get("data") or {}).get("summary", summary)
    return str(summary)


def _who(value: object) -> str:
    if isinstance(value, Mapping):  # a structured record of who acknowledged
        return ", ".join(str(v) for v in value.values() if v)
    return str(value)


def _block(item: Mapping[str, Any], now: datetime) -> list[str]:
    severity = str(item.get("severity", ""))
    style = _SEVERITY_STYLE.get(severity, "bold")
    event = item.get("event") or {}
    state = str(item.get("state", "open"))
    acked = item.get("acknowledged_at")
    lines = [f"[{style}]{safe(severity.upper())}[/]  [bold]{safe(_summary(item))}[/]"]
    tlp = str(event.get("tlp", "amber")).upper()
    lines.append(
        f"  from {safe(item.get('alert_source', '?'))} · TLP:{safe(tlp)} · "
        f"{safe(item.get('view', ''))} view · {safe(state)}"
    )
    lines.append(f"  why: {safe(', '.join(map(str, item.get('reasons') or ())))}")
    delivered = f"  delivered {_when(item.get('delivered_at'))}"
    if not acked and state not in _CLOSED:
        delivered += f", waiting {_span(_since(item.get('delivered_at'), now))}"
    lines.append(delivered)
    deadline = item.get("deadline")
    if deadline and not acked and state not in _CLOSED:
        late = _since(deadline, now)
        due = f"overdue by {_span(late)}" if late > 0 else f"in {_span(-late)}"
        lines.append(f"  deadline {_when(deadline)}, [bold]{due}[/]")
    if acked:
        ack = item.get("acknowledgement") or {}
        who = _who(item.get("acknowledged_by"))
        if ack.get("person"):
            who = f"{who} ({ack['person']})"
        lines.append(f"  acknowledged by {safe(who)} at {_when(acked)}")
        if ack.get("principal") and ack.get("officer"):  # a typed name beside the principal
            lines.append(f"  typed name: {safe(ack['officer'])}")
    elif state not in _CLOSED:
        lines.append("  [bold]not acknowledged[/]")
    if item.get("escalated"):
        at = (item.get("escalation") or {}).get("escalated_at")
        lines.append(f"  [bold red]ESCALATED[/]{f' at {_when(at)}' if at else ''}")
    lines.append(f"  id {safe(item.get('alert_id', ''))}")
    return lines


def _notice(notice: Mapping[str, Any]) -> list[str]:
    origin = notice.get("alert_source")  # two units' alerts may share an id: say whose
    return [
        f"  {safe(notice.get('unit', '?'))} did not acknowledge by {_when(notice.get('deadline'))}",
        f"    alert {safe(notice.get('alert_id', ''))}" + (f" of {safe(origin)}" if origin else ""),
    ]


def print_inbox(
    unit: str,
    items: Sequence[Mapping[str, Any]],
    notices: Sequence[Mapping[str, Any]],
    console: Console,
    now: datetime | None = None,
) -> None:
    """A unit's deliveries, newest first, then its notices."""
    now = now or datetime.now(UTC)
    waiting = sum(
        1 for i in items if not i.get("acknowledged_at") and i.get("state") not in _CLOSED
    )
    escalated = sum(1 for i in items if i.get("escalated"))
    if not items:
        console.print(f"{safe(unit)} has no alerts", highlight=False)
    else:
        count = f"{len(items)} alert{'s' if len(items) != 1 else ''}"
        console.print(
            f"[bold]Inbox of {safe(unit)}[/]: {count}, {waiting} awaiting "
            f"acknowledgement, {escalated} escalated",
            highlight=False,
        )
    for item in items:
        console.print(highlight=False)
        for line in _block(item, now):
            console.print(line, highlight=False)
    if notices:
        console.print(highlight=False)
        console.print(
            f"[bold]Notices[/] ({len(notices)}): units that did not acknowledge in time",
            highlight=False,
        )
        for notice in notices:
            for line in _notice(notice):
                console.print(line, highlight=False)
