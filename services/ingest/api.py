"""``POST /v1/events``: agency systems publish CloudEvents."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Protocol

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from services.core import problems
from services.core.alert_register import OwnerCheck
from services.core.bus import Publisher
from services.core.config import Principal, Role
from services.core.metrics import EVENTS_ACCEPTED, EVENTS_DUPLICATE, PUBLISHER_EVENTS, Metrics
from services.core.operations import OperationRegister
from services.core.problems import Problem
from services.core.web import caller, collaborators
from services.ingest.backpressure import BackPressure
from services.ingest.content_modes import locate, located_in
from services.ingest.intake import MAX_BATCH, foreign_changes
from services.ingest.operation_check import concerned, operation_refusals, register_accepted
from services.ingest.quotas import Quotas
from services.ingest.screening import MAX_BODY, Screener

router = APIRouter(tags=["ingest"])


class IngestApi(Protocol):
    """What ``POST /v1/events`` works with."""

    @property
    def screener(self) -> Screener:
        """Reads and validates a request's events."""

    @property
    def owners(self) -> OwnerCheck:
        """Which unit raised each alert."""

    @property
    def operations(self) -> OperationRegister | None:
        """The register of operations (closed groups)."""

    @property
    def publisher(self) -> Publisher:
        """Publishes onto the canonical streams."""

    @property
    def metrics(self) -> Metrics:
        """The process's counters."""

    @property
    def quotas(self) -> Quotas:
        """Each publisher's rate limit."""

    @property
    def backpressure(self) -> BackPressure:
        """Whether new events are taken now."""


def ingest_api(request: Request) -> IngestApi:
    """FastAPI dependency: ingest's collaborators."""
    found: IngestApi = collaborators(request)
    return found


_IDS = {"type": "array", "items": {"type": "string"}}
_ACCEPTED = {
    "type": "object",
    "required": ["accepted", "duplicates"],
    "properties": {"accepted": _IDS, "duplicates": _IDS},
}
# Read by hand (three content modes), so the body is declared here: see schemas/json/.
_EVENT = {"type": "object", "description": "A CloudEvent (schemas/json/)."}
_BODIES = {
    "application/cloudevents+json": {"schema": _EVENT},
    "application/cloudevents-batch+json": {"schema": {"type": "array", "items": _EVENT}},
    "application/json": {"schema": {"oneOf": [_EVENT, {"type": "array", "items": _EVENT}]}},
}


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY:
        raise Problem(413, "Payload too large", f"the limit is {MAX_BODY} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise Problem(413, "Payload too large", f"the limit is {MAX_BODY} bytes")
    return bytes(body)


@router.post(
    "/v1/events",
    status_code=202,
    summary="Publish one CloudEvent or a batch (all or nothing)",
    description="Structured mode (`application/cloudevents+json` or `application/json`), "
    "binary mode (`ce-*` headers, `data` as the body: `Content-Type: application/json`, or none "
    "for an event without `datacontenttype`) or a batch "
    f"(`application/cloudevents-batch+json` or a JSON array, at most {MAX_BATCH}). "
    "409 when a change (`alert.updated`/`cancelled`/`closed`) names an alert that another "
    "unit raised: only the unit that raised an alert may change it. "
    "429 with `Retry-After` when the publisher is over its rate limit (`limits` in the "
    "configuration), 413 over its batch size. 503 with `Retry-After` while the ledger or the "
    "notifier is too far behind (back-pressure).",
    responses={
        202: {
            "description": '{"accepted": [ids], "duplicates": [ids]}',
            "content": {"application/json": {"schema": _ACCEPTED}},
        },
        **problems.documented(400, 401, 403, 409, 413, 415, 422, 429, 503),
    },
    openapi_extra={"requestBody": {"required": True, "content": _BODIES}},
)
async def publish_events(
    request: Request,
    principal: Annotated[Principal, Depends(caller)],
    runtime: Annotated[IngestApi, Depends(ingest_api)],
) -> JSONResponse:
    """Validate, authorise and durably publish; answer which ids were new."""
    if principal.role is not Role.PUBLISHER:
        raise Problem(403, "Forbidden", f"{principal.name} is not a publisher")
    body = await _read_body(request)
    # units checked before the full validation, large bodies off the event loop (screening.py)
    events = await runtime.screener.events(request.headers, body, principal.name, principal.units)
    binary, batch = located_in(request.headers, body)
    refused = await foreign_changes(events, runtime.owners, batch)
    if refused:  # told now, rather than accepted and dead-lettered by the notifier
        raise Problem(
            409,
            "Another unit's alert",
            "; ".join(r.message for r in refused),
            errors=[locate(r, binary).to_dict() for r in refused],
        )
    try:
        await runtime.backpressure.admit(len(events))
    except Problem:
        runtime.metrics.inc(PUBLISHER_EVENTS, len(events), principal.name, "overloaded")
        raise
    try:
        await runtime.quotas.admit(principal, len(events))
    except Problem:
        runtime.metrics.inc(PUBLISHER_EVENTS, len(events), principal.name, "limited")
        raise
    # an alert or seizure of an operation, and the operation events, against the register
    involved = [(i, ev.event()) for i, ev in enumerate(events) if concerned(ev.type, ev.payload)]
    now = datetime.now(UTC)
    refused = await operation_refusals(involved, runtime.operations, now, batch)
    if refused:
        raise Problem(
            422,
            "Unprocessable operation",
            "; ".join(r.message for r in refused),
            errors=[locate(r, binary).to_dict() for r in refused],
        )
    flags = await runtime.publisher.publish(events)
    if involved and runtime.operations is not None:
        await register_accepted([ev for _, ev in involved], runtime.operations, now)
    new = sum(flags)
    runtime.metrics.inc(EVENTS_ACCEPTED, new, "http")
    runtime.metrics.inc(EVENTS_DUPLICATE, len(flags) - new, "http")
    runtime.metrics.inc(PUBLISHER_EVENTS, new, principal.name, "accepted")
    runtime.metrics.inc(PUBLISHER_EVENTS, len(flags) - new, principal.name, "duplicate")
    return JSONResponse(
        {
            "accepted": [ev.id for ev, new in zip(events, flags, strict=True) if new],
            "duplicates": [ev.id for ev, new in zip(events, flags, strict=True) if not new],
        },
        status_code=202,
    )
