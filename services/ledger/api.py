"""Auditors' endpoints: page through the ledger and verify its chain."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from services.auth import require
from services.config import Principal, Role
from services.ledger.store import Query as LedgerQuery
from services.ledger.store import utc_text
from services.runtime_deps import Deps, caller, deps

router = APIRouter(tags=["ledger"])


def _utc(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return utc_text(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


@router.get("/v1/ledger/events", summary="Ledger entries after a seq")
async def ledger_events(
    principal: Annotated[Principal, Depends(caller)],
    runtime: Annotated[Deps, Depends(deps)],
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    type: Annotated[list[str] | None, Query()] = None,
    since: Annotated[datetime | None, Query(description="Event time at or after.")] = None,
    until: Annotated[datetime | None, Query(description="Event time before.")] = None,
) -> dict[str, Any]:
    """One page of entries with seq, hash, prev_hash, recorded_at and the event."""
    require(principal, Role.AUDITOR)
    query = LedgerQuery(
        after=after, limit=limit, types=tuple(type or ()),
        since=_utc(since), until=_utc(until),
    )  # fmt: skip
    page = [e.to_dict() async for e in runtime.ledger.entries(query)]
    return {"events": page, "next": page[-1]["seq"] if len(page) == limit else None}


@router.get("/v1/ledger/verify", summary="Recompute the hash chain")
async def ledger_verify(
    principal: Annotated[Principal, Depends(caller)],
    runtime: Annotated[Deps, Depends(deps)],
) -> dict[str, Any]:
    """``{"ok", "count", "head", "first_bad_seq"}``."""
    require(principal, Role.AUDITOR)
    return (await runtime.ledger.verify()).to_dict()
