"""Inbox and acknowledgement endpoints for liaison officers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from schemas.alerts import Name, Text
from services import problems
from services.auth import require_officer_of, require_unit_reader
from services.config import Principal
from services.notifier import live
from services.notifier.handlers import acknowledge
from services.problems import Problem
from services.runtime_deps import Deps, caller, deps

router = APIRouter(tags=["notifier"])


class AckRequest(BaseModel):
    """Optional body of an acknowledgement."""

    model_config = ConfigDict(extra="forbid")

    # The event's own types, so what the event would refuse is refused here, before any effect.
    officer: Name | None = Field(default=None, description="Who acknowledged: one line.")
    note: Text | None = Field(default=None, description="A remark for the record (lines, tabs).")


def _json_body(request: Request) -> None:
    """415 for a body that is not JSON (FastAPI would try to read it as JSON anyway)."""
    has_body = request.headers.get("content-length", "0") != "0" or (
        "transfer-encoding" in request.headers
    )
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if has_body and media != "application/json":
        raise Problem(415, "Unsupported media type", "send the body as application/json")


def _known_unit(runtime: Deps, unit: str) -> None:
    if unit not in runtime.topology:
        raise Problem(404, "Unknown unit", f"no unit {unit!r} in the topology")


_REFUSED = problems.documented(401, 403, 404, 422)


@router.get(
    "/v1/units/{unit}/alerts", summary="A unit's deliveries, newest first", responses=_REFUSED
)
async def list_alerts(
    unit: str,
    principal: Annotated[Principal, Depends(caller)],
    runtime: Annotated[Deps, Depends(deps)],
) -> dict[str, Any]:
    """The unit's inbox: each alert as this unit may see it, with reasons and acks."""
    require_unit_reader(principal, unit)
    _known_unit(runtime, unit)
    return {
        "unit": unit,
        "alerts": await runtime.inbox.list(unit),
        "notices": await runtime.inbox.notices(unit),
    }


@router.get(
    "/v1/units/{unit}/alerts/stream",
    summary="Live deliveries and changes (Server-Sent Events, resumable with Last-Event-ID)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **_REFUSED},
)
async def stream_alerts(
    unit: str,
    request: Request,
    principal: Annotated[Principal, Depends(caller)],
    runtime: Annotated[Deps, Depends(deps)],
    last_event_id: Annotated[str | None, Header(pattern=r"^\d+-\d+$")] = None,
) -> StreamingResponse:
    """One SSE event per delivery, change, acknowledgement, escalation or notice."""
    require_officer_of(principal, unit)
    _known_unit(runtime, unit)
    after = await live.start_id(runtime.redis, unit, last_event_id)
    frames = live.events(runtime.redis, runtime.inbox, unit, after, request.is_disconnected)
    return StreamingResponse(
        frames, media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )


@router.post(
    "/v1/units/{unit}/alerts/{alert_id}/ack",
    summary="Acknowledge an alert (idempotent)",
    responses={**_REFUSED, **problems.documented(400, 413, 415)},
    dependencies=[Depends(_json_body)],
)
async def ack_alert(
    unit: str,
    alert_id: str,
    principal: Annotated[Principal, Depends(caller)],
    runtime: Annotated[Deps, Depends(deps)],
    body: Annotated[AckRequest | None, Body()] = None,
) -> dict[str, Any]:
    """Record that an officer of the unit has seen the alert."""
    require_officer_of(principal, unit)
    _known_unit(runtime, unit)
    request = body or AckRequest()
    officer = request.officer or principal.name
    stored = await acknowledge(unit, alert_id, officer, request.note, runtime.notifier)
    if stored is None:
        raise Problem(404, "No such delivery", f"{unit} has not received alert {alert_id!r}")
    delivery = await runtime.inbox.get(unit, alert_id)
    return {"unit": unit, "alert_id": alert_id, **(delivery or {})}
