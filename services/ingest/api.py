"""``POST /v1/events``: agency systems publish CloudEvents."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from services.config import Principal, Role
from services.ingest.intake import MAX_BATCH, Rejected, foreign_units, validate_batch
from services.problems import Problem
from services.runtime_deps import Deps, caller, deps

MAX_BODY = 8 * 1024 * 1024
router = APIRouter(tags=["ingest"])


async def _read_json(request: Request) -> Any:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY:
        raise Problem(413, "Payload too large", f"the limit is {MAX_BODY} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise Problem(413, "Payload too large", f"the limit is {MAX_BODY} bytes")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Problem(400, "Malformed JSON", str(exc)) from None


@router.post(
    "/v1/events",
    status_code=202,
    summary="Publish one CloudEvent or a batch (all or nothing)",
    responses={202: {"description": '{"accepted": [ids], "duplicates": [ids]}'}},
)
async def publish_events(
    request: Request,
    principal: Annotated[Principal, Depends(caller)],
    runtime: Annotated[Deps, Depends(deps)],
) -> JSONResponse:
    """Validate, authorise and durably publish; answer which ids were new."""
    if principal.role is not Role.PUBLISHER:
        raise Problem(403, "Forbidden", f"{principal.name} is not a publisher")
    body = await _read_json(request)
    if isinstance(body, list) and len(body) > MAX_BATCH:
        raise Problem(413, "Batch too large", f"at most {MAX_BATCH} events per request")
    try:
        events, _ = validate_batch(body, runtime.topology)
    except Rejected as exc:
        errors = [r.to_dict() for r in exc.rejections]
        raise Problem(422, "Invalid event", str(exc), errors=errors) from None
    foreign = foreign_units(events, principal.units)
    if foreign:
        raise Problem(
            403, "Forbidden", f"{principal.name} may not publish for {', '.join(foreign)}"
        )
    flags = await runtime.publisher.publish(events)
    return JSONResponse(
        {
            "accepted": [ev.id for ev, new in zip(events, flags, strict=True) if new],
            "duplicates": [ev.id for ev, new in zip(events, flags, strict=True) if not new],
        },
        status_code=202,
    )
