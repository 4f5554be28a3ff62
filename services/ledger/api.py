"""Auditors' endpoints: page through the ledger and verify its chain."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Protocol

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.core.access import (
    PURPOSE_DOC,
    PURPOSE_MAX,
    PURPOSE_PATTERN,
    AccessLog,
    clean_purpose,
    record_read,
)
from services.core.auth import require
from services.core.config import Principal, Role
from services.core.problems import Problem, documented
from services.core.web import caller, collaborators
from services.ledger.records import utc_text
from services.ledger.scan import Query as LedgerQuery
from services.ledger.scan import entry_json
from services.ledger.store import SqlLedger

router = APIRouter(tags=["ledger"])
_PERSONS = '"persons":[{'
"""How persons start in an event's canonical text (a non-nominal view has none)."""


class LedgerApi(Protocol):
    """What the auditors' endpoints work with."""

    @property
    def ledger(self) -> SqlLedger:
        """The ledger, read-only here."""

    @property
    def access(self) -> AccessLog | None:
        """Records reads of personal data."""


class VerifyResult(BaseModel):
    """The outcome of ``GET /v1/ledger/verify`` (docs/ledger.md)."""

    ok: bool
    count: int = Field(description="Entries checked.")
    head: str = Field(description="The hash of the last entry.")
    first_bad_seq: int | None = Field(description="The lowest entry that failed, or null.")
    checkpoints: int = Field(description="Signed checkpoints checked.")
    problems: list[str]
    origin_verified: bool = Field(description="A key the server trusts vouches for the entries.")
    trusted_keys: list[str] = Field(description="Ids of the keys the signatures were checked with.")
    unsigned: int = Field(description="Entries after the last signed checkpoint.")


def ledger_api(request: Request) -> LedgerApi:
    """FastAPI dependency: the ledger's collaborators."""
    found: LedgerApi = collaborators(request)
    return found


def _utc(moment: datetime | None, name: str) -> str | None:
    if moment is None:
        return None
    try:
        return utc_text(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    except OverflowError:  # e.g. 9999-12-31T23:59:59-14:00 is past the last UTC year
        errors = [{"field": f"query.{name}", "message": "out of range once in UTC"}]
        raise Problem(422, "Invalid request", errors=errors) from None


@router.get(
    "/v1/ledger/events",
    summary="Ledger entries after a seq",
    response_class=Response,
    responses={200: {"content": {"application/json": {}}}, **documented(401, 403, 422, 428, 503)},
)
async def ledger_events(
    principal: Annotated[Principal, Depends(caller)],
    runtime: Annotated[LedgerApi, Depends(ledger_api)],
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    type: Annotated[list[str] | None, Query()] = None,
    since: Annotated[
        datetime | None,
        Query(description="Event time at or after (RFC 3339; without a UTC offset: UTC)."),
    ] = None,
    until: Annotated[
        datetime | None,
        Query(description="Event time before (RFC 3339; without a UTC offset: UTC)."),
    ] = None,
    purpose: Annotated[
        str | None,
        Query(max_length=PURPOSE_MAX, pattern=PURPOSE_PATTERN, description=PURPOSE_DOC),
    ] = None,
) -> Response:
    """One page ``{"events": [{seq, hash, prev_hash, recorded_at, event}], "next": seq | null}``
    (auditors; witnesses, who recompute the chain before they cosign); a page that shows
    persons' identities is recorded in the access record first."""
    require(principal, Role.AUDITOR, Role.WITNESS)
    why = clean_purpose(purpose)
    query = LedgerQuery(
        after=after,
        limit=limit,
        types=tuple(type or ()),
        since=_utc(since, "since"),
        until=_utc(until, "until"),
    )
    rows = [row async for page in runtime.ledger.pages(query) for row in page]
    # only the events that name persons are parsed, to find whom the page shows
    named = [json.loads(row[4]) for row in rows if _PERSONS in row[4]]
    await record_read(runtime.access, principal, "api.ledger.events", why, named)
    following = str(rows[-1][0]) if len(rows) == limit else "null"
    # the stored event text is canonical JSON already: embedded as it is, never re-parsed
    body = f'{{"events":[{",".join(map(entry_json, rows))}],"next":{following}}}'
    return Response(body, media_type="application/json")


@router.get(
    "/v1/ledger/verify",
    summary="Recompute the hash chain",
    response_model=VerifyResult,
    responses=documented(401, 403),
)
async def ledger_verify(
    principal: Annotated[Principal, Depends(caller)],
    runtime: Annotated[LedgerApi, Depends(ledger_api)],
) -> JSONResponse:
    """``{"ok", "count", "head", "first_bad_seq", "origin_verified", "trusted_keys", "unsigned"}``,
    checked with the ledger's own key."""
    require(principal, Role.AUDITOR)
    return JSONResponse((await runtime.ledger.verify()).to_dict())  # as VerifyResult says
