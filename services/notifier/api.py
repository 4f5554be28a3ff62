"""Inbox and acknowledgement endpoints for liaison officers."""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import Annotated, Protocol

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import Receive, Scope, Send

from schemas.alerts import Name, Text
from schemas.topology import Topology
from services.core import problems
from services.core.access import (
    PURPOSE_DOC,
    PURPOSE_MAX,
    PURPOSE_PATTERN,
    AccessLog,
    clean_purpose,
    record_read,
)
from services.core.auth import require_officer_of, require_unit_reader
from services.core.config import Principal
from services.core.problems import Problem
from services.core.web import caller, collaborators
from services.notifier import live
from services.notifier.acknowledgement import Acknowledger, acknowledge
from services.notifier.handlers import NotifierDeps
from services.notifier.inbox import RedisInbox
from services.notifier.inbox_read import CURSOR_PATTERN, InvalidCursor
from services.notifier.lookup import SOURCE_PATTERN, AmbiguousAlert, received_alert
from services.notifier.model import AckedDelivery, Delivery, Notice

router = APIRouter(tags=["notifier"])


class NotifierApi(Protocol):
    """What the inbox, acknowledgement and live-stream endpoints work with."""

    @property
    def topology(self) -> Topology:
        """The units."""

    @property
    def inbox(self) -> RedisInbox:
        """The inboxes, on the API's client."""

    @property
    def notifier(self) -> NotifierDeps:
        """The notifier's handlers' collaborators, on the API's client."""

    @property
    def live(self) -> live.LiveFeeds:
        """The live streams."""

    @property
    def access(self) -> AccessLog | None:
        """Records reads of personal data."""


def notifier_api(request: Request) -> NotifierApi:
    """FastAPI dependency: the notifier's collaborators."""
    found: NotifierApi = collaborators(request)
    return found


MAX_PAGE = 200
"""Deliveries per inbox page at most (each alert is at most 64 KiB, plus its changes)."""


class AckRequest(BaseModel):
    """Optional body of an acknowledgement."""

    model_config = ConfigDict(extra="forbid")

    # The receipt's own types: what passes here is what the ledger will record, so a blank
    # name is a 422 before anything is written, never a failure after.
    officer: Name | None = Field(
        default=None,
        description="The officer's name as typed (recorded beside the authenticated principal).",
    )
    note: Text | None = Field(default=None, description="A remark for the record.")


class InboxPage(BaseModel):
    """A page of a unit's inbox (``GET /v1/units/{unit}/alerts``)."""

    unit: str
    alerts: list[Delivery] = Field(description="Deliveries, newest first.")
    notices: list[Notice] = Field(description="Escalation notices (coordinators), newest first.")
    next: str | None = Field(description="The cursor of the following page (`after`), or null.")


def _json_body(request: Request) -> None:
    """415 for a body that is not JSON (FastAPI would try to read it as JSON anyway)."""
    has_body = request.headers.get("content-length", "0") != "0" or (
        "transfer-encoding" in request.headers
    )
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if has_body and media != "application/json":
        raise Problem(415, "Unsupported media type", "send the body as application/json")


def _known_unit(runtime: NotifierApi, unit: str) -> None:
    if unit not in runtime.topology:
        raise Problem(404, "Unknown unit", f"no unit {unit!r} in the topology")


_REFUSED = problems.documented(401, 403, 404, 422)
RETRY_STREAM = "10"
"""Seconds a principal refused another live stream is told to wait (its other streams may close)."""


@router.get(
    "/v1/units/{unit}/alerts",
    summary="A unit's deliveries, newest first",
    response_model=InboxPage,
    responses={**_REFUSED, **problems.documented(428, 503)},
)
async def list_alerts(
    unit: str,
    principal: Annotated[Principal, Depends(caller)],
    runtime: Annotated[NotifierApi, Depends(notifier_api)],
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Deliveries per page.")] = 100,
    after: Annotated[
        str | None,
        Query(
            max_length=1024,
            pattern=CURSOR_PATTERN,
            description="The previous page's `next`: the page after it.",
        ),
    ] = None,
    purpose: Annotated[
        str | None,
        Query(max_length=PURPOSE_MAX, pattern=PURPOSE_PATTERN, description=PURPOSE_DOC),
    ] = None,
) -> JSONResponse:
    """The unit's inbox, a page at a time: each alert as this unit may see it, with reasons
    and acks, and ``next`` (the cursor of the following page, or null). A page that shows
    persons' identities is recorded in the access record first (with ``purpose``)."""
    require_unit_reader(principal, unit)
    _known_unit(runtime, unit)
    why = clean_purpose(purpose)
    try:
        alerts, following = await runtime.inbox.page(unit, limit, after)
    except InvalidCursor as exc:
        raise Problem(
            422, "Invalid request", errors=[{"field": "query.after", "message": str(exc)}]
        ) from None
    # the documents as read (InboxPage only describes them): no field dropped or reordered
    page = {
        "unit": unit,
        "alerts": alerts,
        "notices": await runtime.inbox.notices(unit),
        "next": following,
    }
    await record_read(runtime.access, principal, "api.inbox", why, alerts, unit)
    return JSONResponse(page)


class LiveResponse(StreamingResponse):
    """A live stream's response, which gives the screen's slot back however it ends."""

    def __init__(
        self,
        screen: live.Screen,
        frames: AsyncIterable[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """``frames``: what to send (the screen's own frames if not given)."""
        super().__init__(
            screen.frames() if frames is None else frames,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", **(headers or {})},
        )
        self.screen = screen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.screen.close()


async def open_screen(
    runtime: NotifierApi, who: str, unit: str, last_event_id: str | None
) -> live.Screen:
    """A new live screen of ``unit`` for ``who``, or the problem saying why not (422, 429)."""
    try:
        return await runtime.live.open(who, unit, last_event_id)
    except live.NotAnEntryId as exc:
        raise Problem(422, "Invalid Last-Event-ID", str(exc)) from None
    except live.TooManyStreams as exc:
        detail = f"{exc}; at most {runtime.live.per_principal}: close one first"
        raise Problem(
            429, "Too many live streams", detail, headers={"Retry-After": RETRY_STREAM}
        ) from None


@router.get(
    "/v1/units/{unit}/alerts/stream",
    summary="Live deliveries and changes (Server-Sent Events, resumable with Last-Event-ID)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **_REFUSED, **problems.documented(429)},
)
async def stream_alerts(
    unit: str,
    principal: Annotated[Principal, Depends(caller)],
    runtime: Annotated[NotifierApi, Depends(notifier_api)],
    last_event_id: Annotated[str | None, Header(pattern=r"^\d+-\d+$")] = None,
) -> StreamingResponse:
    """One SSE event per delivery, change, acknowledgement, escalation or notice; a comment
    line every heartbeat of silence. At most a few streams per principal (429 beyond)."""
    require_officer_of(principal, unit)
    _known_unit(runtime, unit)
    return LiveResponse(await open_screen(runtime, principal.name, unit, last_event_id))


_ALERT_ID = (
    "The alert's id, percent-encoded (`BT-2024%2F0091`; a raw `/` works too, and `.` or `..` "
    "go as `%2E`): everything between `alerts/` and the final `/ack`."
)
_SOURCE = (
    "The unit that raised the alert (`BLO-OYBEK` or `/units/BLO-OYBEK`); needed only when "
    "the unit received alerts of this id from several units (409 otherwise)."
)


# `alert_id:path`: ids may hold "/" (agencies' record numbers: BT-2024/0091), which the server
# decodes from %2F before routing; the route ends in "/ack", so the id is all that precedes it.
@router.post(
    "/v1/units/{unit}/alerts/{alert_id:path}/ack",
    summary="Acknowledge an alert (idempotent)",
    response_model=AckedDelivery,
    responses={**_REFUSED, **problems.documented(400, 409, 413, 415)},
    dependencies=[Depends(_json_body)],
)
async def ack_alert(
    unit: str,
    alert_id: Annotated[str, Path(description=_ALERT_ID)],
    principal: Annotated[Principal, Depends(caller)],
    runtime: Annotated[NotifierApi, Depends(notifier_api)],
    body: Annotated[AckRequest | None, Body()] = None,
    source: Annotated[str | None, Query(pattern=SOURCE_PATTERN, description=_SOURCE)] = None,
) -> JSONResponse:
    """Record that an officer of the unit has seen the alert."""
    require_officer_of(principal, unit)
    _known_unit(runtime, unit)
    request = body or AckRequest()
    by = Acknowledger(principal.name, principal.person, request.officer, request.note)
    try:
        alert = await received_alert(runtime.inbox, unit, alert_id, source)
    except AmbiguousAlert as exc:
        raise Problem(
            409, "Ambiguous alert id", str(exc), extensions={"sources": exc.origins}
        ) from None
    stored = None
    if alert is not None:
        stored = await acknowledge(unit, alert, by, runtime.notifier)
    if alert is None or stored is None:
        whose = f" from {source}" if source else ""
        raise Problem(404, "No such delivery", f"{unit} has not received alert {alert_id!r}{whose}")
    delivery = await runtime.inbox.get(unit, alert)
    acked = {
        "unit": unit,
        "alert_id": alert.id,
        "alert_source": alert.origin,
        **dict(delivery or {}),
    }
    return JSONResponse(acked)
