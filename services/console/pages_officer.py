"""An officer's pages: the unit's inbox (live), acknowledging, one alert with map and story.

Authorization is the API's own (:mod:`services.core.auth`): the inbox and an alert page for an
officer of the unit or an auditor, acknowledging and the live stream for an officer of the
unit only. What an alert shows is the unit's view as the inbox stores it — the same
document ``GET /v1/units/{unit}/alerts`` returns — so person data follows the API's rules.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import RedirectResponse, Response

from schemas.alerts import AlertRef
from services.console import timeline, views
from services.console.pages_access import recorded_read
from services.console.render import PREFIX, Viewer, path_id, render
from services.console.svgmap import Marks
from services.console.web import ConsoleApi, form_text, posted, runtime, safe_back, sessions, viewer
from services.core.auth import require_officer_of, require_unit_reader
from services.core.config import Role
from services.core.problems import Problem
from services.ledger.audit import in_trail_of
from services.ledger.scan import Query
from services.notifier.acknowledgement import Acknowledger, acknowledge
from services.notifier.api import LiveResponse, open_screen
from services.notifier.lookup import AmbiguousAlert, received_alert

router = APIRouter()
SESSION_CHECK = 15.0
"""How often, at most, an open live stream checks that its session still lives (seconds): at
each change or keep-alive (``LIVE_HEARTBEAT``) at least this long after the last check."""


def _known(deps: ConsoleApi, unit: str) -> None:
    if unit not in deps.topology:
        raise Problem(404, "Unknown unit", f"no unit {unit!r} in the topology")


async def received(deps: ConsoleApi, unit: str, alert_id: str, source: str | None) -> AlertRef:
    """The alert of this id (from ``source``, when given) in the unit's inbox: 404 if there is
    none, 409 if several units' alerts have this id and no ``source`` says which."""
    try:
        alert = await received_alert(deps.inbox, unit, alert_id, source)
    except AmbiguousAlert as exc:
        raise Problem(409, "Ambiguous alert id", str(exc)) from None
    except ValueError as exc:
        raise Problem(422, "Invalid request", f"source: {exc}") from None
    if alert is None:
        whose = f" from {source}" if source else ""
        raise Problem(404, "No such delivery", f"{unit} has not received alert {alert_id!r}{whose}")
    return alert


def zone_of(deps: ConsoleApi, unit: str | None) -> ZoneInfo:
    """A unit's time zone (UTC when the topology has none)."""
    if unit and unit in deps.topology and (name := deps.topology.unit(unit).timezone):
        return ZoneInfo(name)
    return ZoneInfo("UTC")


async def _inbox(
    request: Request, unit: str, touch: bool, show: str | None = None
) -> tuple[Viewer, ConsoleApi, views.Inbox]:
    back = f"{PREFIX}/units/{unit}"
    if query := request.url.query:
        back += f"?{query}"
    who = await viewer(request, touch=touch, back=back)
    deps = runtime(request)
    require_unit_reader(who.principal, unit)
    _known(deps, unit)
    show = show or request.query_params.get("show", "open")
    if show not in views.SHOWS:
        show = "open"
    inbox = views.build_inbox(
        await deps.inbox.list(unit), await deps.inbox.notices(unit), show, datetime.now(UTC)
    )
    return who, deps, inbox


def _context(who: Viewer, deps: ConsoleApi, unit: str, inbox: views.Inbox) -> dict[str, Any]:
    return {
        "unit": deps.topology.unit(unit),
        "inbox": inbox,
        "units": deps.topology.units,
        "zone": zone_of(deps, unit),
        "now": datetime.now(UTC),
        "can_ack": who.principal.role is Role.OFFICER and who.principal.unit == unit,
        "coordinator": deps.topology.unit(unit).kind == "coordinator",
    }


@router.get("/units/{unit}")
async def inbox_page(request: Request, unit: str) -> Response:
    """The unit's inbox, newest first, one tab at a time (``?show=``)."""
    who, deps, inbox = await _inbox(request, unit, touch=True)
    response = render(request, "inbox.html", viewer=who, **_context(who, deps, unit, inbox))
    if who.session.flash:
        await sessions(request).save(who.cookie, who.session, flash=None)
    return response


@router.get("/units/{unit}/panel")
async def inbox_panel(request: Request, unit: str) -> Response:
    """The inbox's list alone, which the page re-fetches when told something changed. A
    background refresh: it does not keep an idle session alive."""
    who, deps, inbox = await _inbox(request, unit, touch=False)
    context = _context(who, deps, unit, inbox)
    return render(request, "_inbox_panel.html", viewer=who, fragment=True, **context)


@router.post("/units/{unit}/acknowledge")
async def acknowledge_alert(request: Request, unit: str) -> Response:
    """ "Acknowledge" (with an optional note), recorded as the signed-in officer — through the
    notifier's own acknowledgement, exactly as the API's ``…/ack`` does."""
    who, form = await posted(request)
    deps = runtime(request)
    require_officer_of(who.principal, unit)
    _known(deps, unit)
    alert_id = form_text(form, "alert_id", 256)
    note = form_text(form, "note", 2000)
    if alert_id is None:
        raise Problem(422, "Invalid request", "which alert? alert_id is missing")
    alert = await received(deps, unit, alert_id, form_text(form, "alert_source", 72))
    by = Acknowledger(who.principal.name, who.principal.person, None, note)
    try:
        stored = await acknowledge(unit, alert, by, deps.notifier)
    except ValidationError as invalid:  # e.g. a control character in the note: nothing written
        reason = invalid.errors()[0]["msg"]
        raise Problem(422, "Invalid request", f"note: {reason}") from None
    if stored is None:
        raise Problem(404, "No such delivery", f"{unit} has not received alert {alert_id!r}")
    back = safe_back(form.get("back"), f"{PREFIX}/units/{unit}")
    if not back.startswith(f"{PREFIX}/units/{unit}"):
        back = f"{PREFIX}/units/{unit}"
    if request.headers.get("hx-request") == "true" and isinstance(panel := form.get("panel"), str):
        _, _, inbox = await _inbox(request, unit, touch=True, show=panel)
        context = _context(who, deps, unit, inbox)
        return render(request, "_inbox_panel.html", viewer=who, fragment=True, **context)
    await sessions(request).save(who.cookie, who.session, flash=f"acknowledged:{alert_id}")
    return RedirectResponse(back, status_code=303)


@router.get("/units/{unit}/events")
async def inbox_events(request: Request, unit: str) -> Response:
    """The doorbell: an SSE frame whenever the unit's inbox changes (and one on every
    connect), each saying only *what kind* of change — the page then re-fetches its list, so
    a frame missed while reconnecting costs nothing. Ends when the session ends."""
    who = await viewer(request, touch=False)
    deps = runtime(request)
    require_officer_of(who.principal, unit)
    _known(deps, unit)
    store = sessions(request)
    # from here on every change is a frame; what came before, the refetch on "connected" shows
    screen = await open_screen(deps, who.principal.name, unit, None)

    async def frames() -> AsyncIterator[str]:
        yield "retry: 3000\n\nevent: changed\ndata: connected\n\n"
        checked = datetime.now(UTC).timestamp()
        async with aclosing(screen.frames()) as changes:
            async for frame in changes:  # a change, or a keep-alive every heartbeat of quiet
                kind, entry = _field(frame, "event"), _field(frame, "id")
                if kind is not None and entry is not None:
                    yield f"id: {entry}\nevent: changed\ndata: {kind}\n\n"
                elif frame.startswith(":"):
                    yield ": keep-alive\n\n"
                now = datetime.now(UTC).timestamp()
                if now - checked >= SESSION_CHECK:
                    checked = now
                    if await store.load(who.cookie, touch=False) is None:
                        return  # the session ended

    return LiveResponse(screen, frames(), headers={"X-Accel-Buffering": "no"})


def _field(frame: str, name: str) -> str | None:
    for line in frame.splitlines():
        if line.startswith(f"{name}: "):
            return line.removeprefix(f"{name}: ")
    return None


@router.get("/units/{unit}/alerts/{alert_id:path}")
async def alert_page(request: Request, unit: str, alert_id: str) -> Response:
    """One alert as this unit sees it: details, this unit's delivery, map, history."""
    who = await viewer(request)
    deps = runtime(request)
    require_unit_reader(who.principal, unit)
    _known(deps, unit)
    alert = await received(deps, unit, alert_id, request.query_params.get("source"))
    delivery = await deps.inbox.get(unit, alert)
    if delivery is None:
        raise Problem(404, "No such delivery", f"{unit} has not received alert {alert_id!r}")
    asked = await recorded_read(request, who, deps, "console.alert", delivery, unit)
    if asked is not None:
        return asked  # a purpose is required first
    async with aclosing(deps.ledger.entries(Query(about=alert_id))) as entries:
        listed = [
            (e.seq, e.hash, e.event) async for e in entries if in_trail_of(e.event, alert.origin)
        ]
    officer_view = timeline.Viewer(unit, deps.topology.country_of(unit))
    steps = timeline.build(listed, deps.topology, officer_view)
    recipients = {s.unit: s.reasons for s in steps if s.type == "alert.delivered" and s.unit}
    row = views.row_of(delivery, datetime.now(UTC))
    origin = str(delivery.get("alert_source") or "")
    marks = Marks(origin=origin, viewer=unit, recipients=recipients)
    return render(
        request,
        "alert.html",
        viewer=who,
        unit=deps.topology.unit(unit),
        delivery=delivery,
        row=row,
        event=delivery.get("event") or {},
        steps=steps,
        recipients=recipients,
        marks=marks,
        topology=deps.topology,
        zone=zone_of(deps, unit),
        can_ack=who.principal.role is Role.OFFICER and who.principal.unit == unit,
        back=f"{PREFIX}/units/{unit}/alerts/{path_id(alert_id)}?source={alert.origin}",
        now=datetime.now(UTC),
    )
