"""An alert's story from the ledger, as steps a person reads: raised, delivered to whom and
why, acknowledged by whom, escalated, updated, closed — and, for an officer, only what the
originators released to the officer's country.

No step ever carries a person's identity: steps are built from named fields only (unit,
reasons, view, officer, reason, drugs, which fields changed), never from ``persons``. An
officer sees an event only if its ``releasableto`` (default: its originator's country)
includes the officer's country; the notifier's own records follow the alert's. With ``tlp``
red the alert is for its named recipients alone, so an officer sees only the steps of its own
unit. Officers' names appear to auditors and to the officer's own unit, not to other units.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from schemas.topology import Topology
from services.console.i18n import N_
from services.console.views import countries, parse_time

NOTIFIER = "/liaison/notifier"
KINDS = {
    "alert.raised": N_("Raised"),
    "alert.delivered": N_("Delivered"),
    "alert.acknowledged": N_("Acknowledged"),
    "alert.escalated": N_("Escalated"),
    "alert.updated": N_("Updated"),
    "alert.cancelled": N_("Cancelled"),
    "alert.closed": N_("Closed"),
    "seizure.reported": N_("Seizure reported"),
    "alert.webhook_failed": N_("Webhook failed"),
}


@dataclass(frozen=True, slots=True)
class Viewer:
    """Whose timeline it is: an officer's unit and country, or an auditor (both None)."""

    unit: str | None = None
    country: str | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """One thing that happened to the alert."""

    seq: int
    at: datetime
    type: str
    unit: str | None
    """The unit concerned: the originator, the recipient, the acknowledging unit…"""
    reasons: list[str] = field(default_factory=list)
    view: str | None = None
    officer: str | None = None
    text: str | None = None
    """Free text of the event: a summary, a closing reason, a note."""
    changed: list[str] = field(default_factory=list)
    drugs: list[tuple[float, str, str]] = field(default_factory=list)
    hash: str = ""


def _unit(source: str) -> str | None:
    return source.removeprefix("/units/") if source.startswith("/units/") else None


def _releasable(
    event: dict[str, Any], alert: dict[str, Any] | None, topology: Topology
) -> set[str]:
    """Countries an event is released to: its own ``releasableto``, else its originator's
    country; the notifier's records follow the alert they are about."""
    if event.get("source") == NOTIFIER:
        event = alert or event
    found = countries(event.get("releasableto"))
    if found:
        return set(found)
    unit = _unit(str(event.get("source", "")))
    return {topology.country_of(unit)} if unit and unit in topology else set()


def _step(seq: int, digest: str, event: dict[str, Any], show_officer: bool) -> Step:
    data = event.get("data") or {}
    kind = str(event.get("type"))
    at = parse_time(event.get("time")) or datetime.min.replace(tzinfo=UTC)
    step = Step(seq, at, kind, _unit(str(event.get("source", ""))), hash=digest)
    if kind == "alert.raised":
        return replace(step, text=data.get("summary"))
    if kind == "alert.delivered":
        return replace(
            step,
            unit=data.get("recipient"),
            reasons=list(data.get("reasons") or []),
            view=data.get("view"),
        )
    if kind == "alert.acknowledged":
        return replace(
            step,
            unit=data.get("unit"),
            officer=data.get("officer") if show_officer else None,
            text=data.get("note") if show_officer else None,
        )
    if kind == "alert.escalated":
        return replace(step, unit=data.get("unit"), text=data.get("coordinator"))
    if kind == "alert.updated":
        return replace(step, changed=sorted(data))
    if kind == "seizure.reported":
        drugs = [
            (float(d.get("quantity", 0)), str(d.get("measure", "")), str(d.get("substance", "")))
            for d in data.get("drugs") or []
        ]
        return replace(step, drugs=drugs)
    if kind == "alert.webhook_failed":
        return replace(step, unit=data.get("unit"), text=data.get("reason"))
    return replace(step, text=data.get("reason"))


def _concerns(event: dict[str, Any]) -> str | None:
    """The unit a notifier record is about (recipient, acknowledging or escalated unit)."""
    data = event.get("data") or {}
    return data.get("recipient") or data.get("unit")


def build(
    entries: Iterable[tuple[int, str, dict[str, Any]]], topology: Topology, viewer: Viewer
) -> list[Step]:
    """``(seq, hash, event)`` of one alert's ledger entries → the steps ``viewer`` may read."""
    listed = list(entries)
    alert = next((e for _, _, e in listed if e.get("type") == "alert.raised"), None)
    red = alert is not None and alert.get("tlp") == "red"
    steps = []
    for seq, digest, event in listed:
        concerned = _concerns(event) if event.get("source") == NOTIFIER else None
        own = viewer.unit is not None and concerned == viewer.unit
        if viewer.country is not None:
            if viewer.country not in _releasable(event, alert, topology):
                continue
            if red and event.get("source") == NOTIFIER and not own:
                continue
        steps.append(_step(seq, digest, event, show_officer=viewer.unit is None or own))
    return steps
