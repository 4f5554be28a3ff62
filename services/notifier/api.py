"""Inbox and acknowledgement endpoints for liaison officers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import Receive, Scope, Send

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

    officer: str | None = Field(default=None, max_length=200, description="Who acknowledged.")
    note: str | None = Field(default=None, max_length=2000, description="A remark for the record.")


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
RETRY_STREAM = "10"
"""Seconds a principal refused another live stream is told to wait (its other streams may close)."""


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


class _LiveResponse(StreamingResponse):
    """The SSE response of one screen, which gives its slot back however the response ends."""

    def __init__(self, screen: live.Screen) -> None:
        super().__init__(
            screen.frames(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
        )
        self.screen = screen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.screen.close()


@router.get(
    "/v1/units/{unit}/alerts/stream",
    summary="Live deliveries and changes (Server-Sent Events, resumable with Last-Event-ID)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **_REFUSED, **problems.documented(429)},
)
async def stream_alerts(
    unit: str,
    principal: Annotated[Principal, Depends(caller)],
    runtime: Annotated[Deps, Depends(deps)],
    last_event_id: Annotated[str | None, Header(pattern=r"^\d+-\d+$")] = None,
) -> StreamingResponse:
    """One SSE event per delivery, change, acknowledgement, escalation or notice; a comment
    line every heartbeat of silence. At most a few streams per principal (429 beyond)."""
    require_officer_of(principal, unit)
    _known_unit(runtime, unit)
    try:
        screen = await runtime.live.open(principal.name, unit, last_event_id)
    except live.NotAnEntryId as exc:
        raise Problem(422, "Invalid Last-Event-ID", str(exc)) from None
    except live.TooManyStreams as exc:
        detail = f"{exc}; at most {runtime.live.per_principal}: close one first"
        raise Problem(
            429, "Too many live streams", detail, headers={"Retry-After": RETRY_STREAM}
        ) from None
    return _LiveResponse(screen)


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
