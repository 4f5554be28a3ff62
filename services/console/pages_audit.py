"""An auditor's pages: the ledger (filters in the URL), one entry, "Verify chain", one
alert's trail (exportable), seizure statistics with charts, the offline bundle.

Everything reads the ledger through its own store (:class:`SqlLedger`: pages, verify) and
audit functions (trail entries, statistics, bundle); only auditors may open these pages,
as only auditors may call ``/v1/ledger/…``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from starlette.background import BackgroundTask
from starlette.responses import FileResponse, RedirectResponse, Response

from schemas.vocabulary import EventType
from services.console import timeline
from services.console.pages_access import recorded_read
from services.console.render import PREFIX, Viewer, render
from services.console.stats import stats_view
from services.console.svgmap import Marks
from services.console.web import ConsoleApi, posted, runtime, sessions, viewer
from services.core.auth import require
from services.core.config import Role
from services.core.problems import Problem
from services.ledger import audit, scan
from services.ledger.records import utc_text
from services.ledger.scan import Query

router = APIRouter()
PAGE = 50


async def _auditor(request: Request) -> Viewer:
    who = await viewer(request)
    require(who.principal, Role.AUDITOR)
    return who


def _time(value: str, name: str, errors: dict[str, str]) -> str | None:
    """A date or date-time of the filter form (UTC unless it names its offset)."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        return utc_text(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    except (ValueError, OverflowError):
        errors[name] = value
        return None


def _filters(request: Request) -> tuple[Query, dict[str, str], dict[str, str]]:
    params = request.query_params
    errors: dict[str, str] = {}
    shown = {k: params.get(k, "").strip() for k in ("type", "source", "since", "until", "after")}
    types = (shown["type"],) if shown["type"] else ()
    if shown["type"] and shown["type"] not in {t.value for t in EventType}:
        errors["type"] = shown["type"]
    source = shown["source"]
    sources = ((source if source.startswith("/") else f"/units/{source}"),) if source else ()
    after = 0
    if shown["after"]:
        try:
            after = max(int(shown["after"]), 0)
        except ValueError:
            errors["after"] = shown["after"]
    since, until = _time(shown["since"], "since", errors), _time(shown["until"], "until", errors)
    query = Query(after=after, limit=PAGE, types=types, sources=sources, since=since, until=until)
    return query, shown, errors


@router.get("/ledger")
async def ledger_page(request: Request) -> Response:
    """Entries in chain order, a page at a time, filtered by type, source and event time."""
    who = await _auditor(request)
    deps = runtime(request)
    query, shown, errors = _filters(request)
    rows: list[tuple[int, str, str, str, str]] = []
    if not errors:
        async with aclosing(deps.ledger.pages(query)) as pages:
            rows = [row async for page in pages for row in page]
    entries = [_summary(row) for row in rows]
    filtered = any(shown[k] for k in ("type", "source", "since", "until"))
    count = await deps.ledger.count()
    nav = {k: v for k, v in shown.items() if v and k != "after"}
    return render(
        request,
        "ledger.html",
        viewer=who,
        entries=entries,
        shown=shown,
        errors=errors,
        next_after=rows[-1][0] if len(rows) == PAGE else None,
        nav=nav,
        count=count,
        newest_after=max(count - PAGE, 0) if not filtered else None,
        types=[t.value for t in EventType],
        verify=who.session.verify,
        status=422 if errors else 200,
    )


def _summary(row: tuple[int, str, str, str, str]) -> dict[str, Any]:
    seq, digest, _prev, recorded_at, text = row
    try:
        event = json.loads(text)
    except ValueError:
        event = {}
    return {
        "seq": seq,
        "hash": digest,
        "recorded_at": recorded_at,
        "type": event.get("type", "?"),
        "source": event.get("source", "?"),
        "id": event.get("id", "?"),
        "subject": event.get("subject"),
        "time": event.get("time"),
        "alert_source": alert_source_of(event),
    }


def alert_source_of(event: dict[str, Any]) -> str | None:
    """The unit whose alert an event is about, as a trail link's ``?source=`` (None: unknown,
    the trail page then asks when several units used the id)."""
    if str(event.get("type", "")).startswith("alert.") and str(event.get("source", "")).startswith(
        "/units/"
    ):
        return str(event["source"]).removeprefix("/units/")  # an alert's own event: its origin's
    data = event.get("data")
    origin = data.get("alert_source") if isinstance(data, dict) else None
    return origin if isinstance(origin, str) else None


@router.get("/ledger/entries/{seq}")
async def entry_page(request: Request, seq: int) -> Response:
    """One entry: its stored text verbatim, hash and prev_hash."""
    who = await _auditor(request)
    deps = runtime(request)
    async with aclosing(deps.ledger.rows(Query(after=max(seq - 1, 0), limit=1))) as rows:
        found = [row async for row in rows]
    if not found or found[0].seq != seq:
        raise Problem(404, "No such entry", f"the ledger has no entry #{seq}")
    entry = found[0]
    pretty = entry.event
    try:
        parsed = json.loads(entry.event)
        pretty = json.dumps(parsed, indent=2, ensure_ascii=False)
        event: dict[str, Any] = parsed
    except ValueError:
        event = {}
    whose = alert_source_of(event) if isinstance(event, dict) else None
    asked = await recorded_read(request, who, deps, "console.ledger.entry", event)
    if asked is not None:
        return asked  # a purpose is required first
    return render(
        request,
        "entry.html",
        viewer=who,
        entry=entry,
        pretty=pretty,
        event=event,
        alert_source=whose,
    )


@router.post("/ledger/verify")
async def verify(request: Request) -> Response:
    """ "Verify chain": recompute every hash and check the signed checkpoints."""
    who, _form = await posted(request)
    require(who.principal, Role.AUDITOR)
    report = (await runtime(request).ledger.verify()).to_dict()
    report["checked_at"] = utc_text(datetime.now(UTC))
    await sessions(request).save(who.cookie, who.session, verify=report)
    return RedirectResponse(f"{PREFIX}/ledger#verify", status_code=303)


async def _origin(request: Request, alert_id: str, source: str | None) -> str | None:
    """Whose alert of this id the trail is: ``source``, or the one unit that raised one
    (409 when several did: the page names them, a link says ``?source=``)."""
    if source:
        return source.removeprefix("/units/")
    try:
        return await audit.raised_by(runtime(request).ledger, alert_id)
    except audit.AmbiguousAlert as exc:
        raise Problem(409, "Ambiguous alert id", f"{exc} (?source=UNIT)") from None


async def _trail_entries(
    request: Request, alert_id: str, source: str | None = None
) -> list[tuple[int, str, dict[str, Any]]]:
    deps = runtime(request)
    origin = await _origin(request, alert_id, source)
    async with aclosing(deps.ledger.entries(Query(about=alert_id))) as entries:
        return [
            (e.seq, e.hash, e.event)
            async for e in entries
            if origin is None or audit.in_trail_of(e.event, origin)
        ]


@router.get("/alerts/{alert_id:path}")
async def trail_page(request: Request, alert_id: str, source: str | None = None) -> Response:
    """One alert's whole story, every step with its ledger seq and hash (``source``: whose,
    when several units raised alerts of this id)."""
    who = await _auditor(request)
    deps = runtime(request)
    listed = await _trail_entries(request, alert_id, source)
    if not listed:
        raise Problem(404, "No such alert", f"the ledger has nothing about alert {alert_id!r}")
    steps = timeline.build(listed, deps.topology, timeline.Viewer())
    raised = next((s for s in steps if s.type == "alert.raised"), None)
    recipients = {s.unit: s.reasons for s in steps if s.type == "alert.delivered" and s.unit}
    marks = Marks(origin=raised.unit if raised else None, recipients=recipients)
    return render(
        request,
        "trail.html",
        viewer=who,
        alert_id=alert_id,
        steps=steps,
        raised=raised,
        source=raised.unit if raised else source,
        recipients=recipients,
        marks=marks,
        topology=deps.topology,
        zones=zones_of(deps),
    )


def zones_of(deps: ConsoleApi) -> dict[str, ZoneInfo]:
    """Each unit's time zone, for the local time of each step."""
    return {u.id: ZoneInfo(u.timezone) for u in deps.topology.units.values() if u.timezone}


def _cell(value: object) -> str:
    """A CSV cell a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv(header: list[str], rows: list[list[object]], filename: str) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([[_cell(v) for v in row] for row in rows])
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/export/trail.csv")
async def trail_csv(request: Request, alert_id: str, source: str | None = None) -> Response:
    """The trail as CSV: one row per step, times in UTC, ledger seq and hash."""
    await _auditor(request)
    deps = runtime(request)
    steps = timeline.build(
        await _trail_entries(request, alert_id, source), deps.topology, timeline.Viewer()
    )
    rows: list[list[object]] = [
        [
            s.seq,
            utc_text(s.at),
            s.type,
            s.unit,
            " ".join(s.reasons),
            s.view,
            s.officer,
            s.text,
            " ".join(s.changed),
            "; ".join(f"{q} {m} {d}" for q, m, d in s.drugs),
            s.hash,
        ]
        for s in steps
    ]
    header = [
        "seq",
        "time_utc",
        "type",
        "unit",
        "reasons",
        "view",
        "officer",
        "text",
        "changed",
        "drugs",
        "hash",
    ]
    return _csv(header, rows, "trail.csv")


@router.get("/export/trail.jsonl")
async def trail_jsonl(request: Request, alert_id: str, source: str | None = None) -> Response:
    """The trail's ledger entries as JSON lines, stored text verbatim (``ledger replay``'s form)."""
    await _auditor(request)
    deps = runtime(request)
    origin = await _origin(request, alert_id, source)
    lines: list[str] = []
    async with aclosing(deps.ledger.pages(Query(about=alert_id))) as pages:
        async for page in pages:
            kept = [
                r for r in page if origin is None or audit.in_trail_of(json.loads(r[4]), origin)
            ]
            lines += scan.json_lines(kept)
    return Response(
        "".join(lines),
        media_type="application/jsonl",
        headers={"Content-Disposition": 'attachment; filename="trail.jsonl"'},
    )


@router.get("/stats")
async def stats_page(request: Request) -> Response:
    """Seizure totals by unit, substance and month: charts and their tables."""
    who = await _auditor(request)
    rows = await audit.seizure_stats(runtime(request).ledger)
    return render(request, "stats.html", viewer=who, stats=stats_view(rows), rows=rows)


@router.get("/stats.csv")
async def stats_csv(request: Request) -> Response:
    """The statistics' rows as CSV (``liaison ledger stats --json``'s fields)."""
    await _auditor(request)
    rows = await audit.seizure_stats(runtime(request).ledger)
    fields = ["unit", "substance", "month", "measure", "quantity", "seizures", "reports"]
    return _csv(fields, [[row[f] for f in fields] for row in rows], "seizures.csv")


@router.get("/ledger/bundle")
async def bundle(request: Request) -> Response:
    """The offline bundle (``liaison ledger export``), written to a temporary file first; what
    it holds of persons is recorded in the access record before."""
    who = await _auditor(request)
    deps = runtime(request)
    ledger = deps.ledger
    named = [
        json.loads(row[4])
        async for page in ledger.pages(Query())
        for row in page
        if '"persons":[{' in row[4]
    ]
    asked = await recorded_read(request, who, deps, "console.export", named)
    if asked is not None:
        return asked  # a purpose is required first
    handle, path = tempfile.mkstemp(prefix="liaison-bundle-", suffix=".jsonl")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            await audit.export_bundle(ledger, out)
    except ValueError as exc:
        os.unlink(path)
        raise Problem(409, "No bundle", str(exc)) from None
    except BaseException:
        os.unlink(path)
        raise
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return FileResponse(
        path,
        media_type="application/jsonl",
        filename=f"liaison-ledger-{stamp}.jsonl",
        background=BackgroundTask(os.unlink, path),
    )
