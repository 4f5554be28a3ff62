"""Witnesses' endpoints: the checkpoint to cosign, and handing in a cosignature."""

from __future__ import annotations

from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.core.auth import require
from services.core.config import Principal, Role
from services.core.problems import Problem, documented
from services.core.web import caller, collaborators
from services.ledger import witness, witness_store
from services.ledger.store import SqlLedger

router = APIRouter(tags=["ledger"])


class WitnessApi(Protocol):
    """What the witnesses' endpoints work with."""

    @property
    def ledger(self) -> SqlLedger:
        """The ledger: its checkpoints, entries and cosignatures."""

    @property
    def ledger_origin(self) -> str:
        """The ledger's name in what witnesses cosign (``LIAISON_LEDGER_ORIGIN``)."""


def witness_api(request: Request) -> WitnessApi:
    """FastAPI dependency: the ledger's collaborators."""
    found: WitnessApi = collaborators(request)
    return found


class CosignatureIn(BaseModel):
    """A cosigned checkpoint, as ``liaison witness cosign`` writes it."""

    note: str = Field(
        max_length=4096,
        description="C2SP note: origin, size, base64 head hash, a blank line, the witness's "
        "signature line (cosignature/v1, Ed25519).",
    )


@router.get(
    "/v1/ledger/checkpoint",
    summary="The latest signed checkpoint, to cosign",
    responses=documented(401, 403, 404),
)
async def latest_checkpoint(
    principal: Annotated[Principal, Depends(caller)],
    runtime: Annotated[WitnessApi, Depends(witness_api)],
) -> dict[str, Any]:
    """``{"origin", "checkpoint" (as in bundles), "note" (the C2SP body a witness cosigns)}``."""
    require(principal, Role.WITNESS, Role.AUDITOR)
    found = await witness_store.latest_checkpoint(runtime.ledger.engine)
    if found is None:
        raise Problem(404, "Not Found", "the ledger has signed no checkpoint yet")
    origin = runtime.ledger_origin
    note = witness.note_body(origin, found.size, found.head_hash).decode()
    return {"origin": origin, "checkpoint": found.to_dict(), "note": note}


@router.post(
    "/v1/ledger/cosignatures",
    summary="Hand in a witness's cosignature of a checkpoint",
    status_code=201,
    responses={
        200: {"description": "This cosignature was kept already"},
        **documented(400, 401, 403, 409, 422),
    },
)
async def add_cosignature(
    body: CosignatureIn,
    principal: Annotated[Principal, Depends(caller)],
    runtime: Annotated[WitnessApi, Depends(witness_api)],
) -> JSONResponse:
    """201 ``{"witness", "size", "new": true}`` (200 when it was kept already); 400 when the
    body is not JSON; 409 when it
    cosigns a head this ledger does not have; 422 when it is malformed or does not verify
    with the calling witness's key."""
    require(principal, Role.WITNESS)
    assert principal.witness_key is not None  # every witness has one (configuration)
    try:
        key = witness.parse_vkey(principal.witness_key)
        kept = await witness_store.accept(
            runtime.ledger.engine, runtime.ledger_origin, body.note, {key.name: key}
        )
    except witness_store.Mismatch as exc:
        raise Problem(409, "Conflict", str(exc)) from None
    except ValueError as exc:
        raise Problem(422, "Invalid cosignature", str(exc)) from None
    [(cosignature, new)] = kept[-1:]
    return JSONResponse(
        {"witness": cosignature.witness, "size": cosignature.size, "new": new},
        status_code=201 if new else 200,
    )
