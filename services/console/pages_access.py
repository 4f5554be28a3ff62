"""The access record in the console: reads of personal data recorded (or a purpose asked
for) before a page shows them, and the auditors' **Access record** page.

A page that would show persons' identities (an alert in full, a ledger entry, the bundle)
calls :func:`recorded_read` first: the read is recorded with the ``purpose`` of the query
(``services/core/access.py``), or — when ``LIAISON_ACCESS_PURPOSE=required`` and none was
given — the page is replaced by a form asking for one (status 428), which comes back to the
same page with it. Nothing personal is shown before the record is written.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from services.console.render import Viewer, render
from services.console.web import ConsoleApi, runtime, viewer
from services.core.access import PURPOSE_MAX, clean_purpose, shown_in
from services.core.auth import require
from services.core.config import Role
from services.core.problems import Problem
from services.ledger.access_store import AccessStore

router = APIRouter()
PAGE = 100


async def recorded_read(
    request: Request,
    who: Viewer,
    deps: ConsoleApi,
    channel: str,
    shown_doc: Any,
    unit: str | None = None,
) -> Response | None:
    """Record a read of ``shown_doc`` before the page shows it; None when the page may go on,
    else the form asking for a purpose (a required one is missing)."""
    purpose = clean_purpose(request.query_params.get("purpose"))
    if deps.access is None:
        raise Problem(503, "Access record unavailable", "reads of personal data cannot be recorded")
    shown = shown_in(shown_doc, deps.access.index)
    if shown and purpose is None and deps.access.required:
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "purpose"]
        return render(
            request,
            "purpose.html",
            viewer=who,
            status=428,
            action=request.url.path,
            params=params,
            named=shown.named,
            maxlength=PURPOSE_MAX,
        )
    await deps.access.record(who.principal, channel, purpose, shown, unit=unit)
    return None


@router.get("/access")
async def access_page(request: Request, before: int | None = None) -> Response:
    """The newest reads of personal data, and whether the access chain verifies (auditors)."""
    who = await viewer(request)
    require(who.principal, Role.AUDITOR)
    store = AccessStore(runtime(request).ledger.engine)
    entries = await store.latest(PAGE, before)
    older = entries[-1]["seq"] if len(entries) == PAGE else None
    return render(
        request,
        "access.html",
        viewer=who,
        entries=entries,
        older=older,
        check=await store.verify(),
    )
