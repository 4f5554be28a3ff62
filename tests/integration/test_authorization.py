"""Who may do what: every endpoint by every caller, the expected status of each cell.

The unit under test is IMT-GULISTAN throughout: ``uz-mia`` publishes for it (own unit),
``uz-customs`` does not (other unit); ``gulistan-duty`` is its officer, ``tashkent-duty``
an officer of another unit; the metrics token (not a principal) reads only the figures;
``niac-witness`` reads the ledger's entries and checkpoint and hands in cosignatures. The stream endpoint is driven on the raw ASGI interface
(an SSE response never ends, so only its start line is awaited).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import MutableMapping
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from schemas.events import CloudEvent
from services.bootstrap import Runtime
from services.core.settings import DEFAULT_LEDGER_ORIGIN
from services.entrypoints.http import create_app
from services.ledger import witness, witness_store
from tests import factories
from tests.integration.conftest import TOKENS, WITNESS_SEED, eventually

UNIT = "IMT-GULISTAN"
CALLERS: dict[str, str | None] = {
    "anonymous": None,
    "wrong-token": "Bearer not-a-configured-token",
    "publisher-own": f"Bearer {TOKENS['mia']}",
    "publisher-other": f"Bearer {TOKENS['customs']}",
    "officer-own": f"Bearer {TOKENS['gulistan']}",
    "officer-other": f"Bearer {TOKENS['tashkent']}",
    "auditor": f"Bearer {TOKENS['auditor']}",
    "metrics-token": f"Bearer {TOKENS['metrics']}",
    "witness": f"Bearer {TOKENS['witness']}",
}
PUBLIC = dict.fromkeys(CALLERS, 200)
DENIED = {"anonymous": 401, "wrong-token": 401, "metrics-token": 401}


def _table(**cells: int) -> dict[str, int]:
    return {
        **dict.fromkeys(CALLERS, 403),
        **DENIED,
        **{k.replace("_", "-"): v for k, v in cells.items()},
    }


# (method, path template, expected status per caller); {alert} is an alert UNIT received.
MATRIX: list[tuple[str, str, dict[str, int]]] = [
    ("GET", "/healthz", PUBLIC),
    ("GET", "/readyz", PUBLIC),
    ("GET", "/metrics", _table(metrics_token=200)),
    ("GET", "/openapi.json", PUBLIC),
    ("GET", "/asyncapi.json", PUBLIC),
    ("POST", "/v1/events", _table(publisher_own=202)),
    ("GET", f"/v1/units/{UNIT}/alerts", _table(officer_own=200, auditor=200)),
    ("GET", f"/v1/units/{UNIT}/alerts/stream", _table(officer_own=200)),
    ("POST", f"/v1/units/{UNIT}/alerts/{{alert}}/ack", _table(officer_own=200)),
    ("GET", "/v1/ledger/events", _table(auditor=200, witness=200)),
    ("GET", "/v1/ledger/verify", _table(auditor=200)),
    ("GET", "/v1/ledger/checkpoint", _table(auditor=200, witness=200)),
    ("POST", "/v1/ledger/cosignatures", _table(witness=201)),
]


def test_the_matrix_covers_every_operation() -> None:
    spec = create_app(None).openapi()  # type: ignore[arg-type]
    served = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    listed = {(m, p.replace(UNIT, "{unit}").replace("{alert}", "{alert_id}")) for m, p, _ in MATRIX}
    assert served <= listed


async def _stream_status(app: FastAPI, path: str, authorization: str | None) -> int:
    """The status of an endless response: its start message, then the client leaves."""
    started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    headers = [(b"authorization", authorization.encode())] if authorization else []
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "headers": headers, "server": ("liaison", 80), "client": None}  # fmt: skip
    sent_request = False

    async def receive() -> dict[str, Any]:
        nonlocal sent_request
        if not sent_request:
            sent_request = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await started
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start" and not started.done():
            started.set_result(message["status"])

    task = asyncio.create_task(app(scope, receive, send))
    try:
        async with asyncio.timeout(10):
            return await started
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _received_alert(api: httpx.AsyncClient) -> str:
    alert = factories.alert()  # from BLO-OYBEK: IMT-GULISTAN is its neighbour
    sent = await api.post(
        "/v1/events", json=alert, headers={"Authorization": f"Bearer {TOKENS['customs']}"}
    )
    assert sent.status_code == 202

    async def received() -> bool:
        inbox = await api.get(
            f"/v1/units/{UNIT}/alerts", headers={"Authorization": f"Bearer {TOKENS['auditor']}"}
        )
        return bool(inbox.json()["alerts"])

    await eventually(received)
    return str(alert["id"])


@pytest.mark.parametrize(
    ("method", "template", "expected"), MATRIX, ids=[f"{m} {p}" for m, p, _ in MATRIX]
)
async def test_each_caller_gets_exactly_its_status(
    runtime: Runtime, method: str, template: str, expected: dict[str, int]
) -> None:
    app = create_app(runtime.deps())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://liaison") as api:
        if template == "/readyz":
            await eventually(lambda: _ready(api))
        path = (
            template.replace("{alert}", await _received_alert(api))
            if "{alert}" in template
            else template
        )
        cosignature = await _cosignature(runtime) if "/v1/ledger/c" in path else None
        actual: dict[str, int] = {}
        for caller, authorization in CALLERS.items():
            headers = {"Authorization": authorization} if authorization else {}
            if path.endswith("/stream"):
                actual[caller] = await _stream_status(app, path, authorization)
                continue
            body = None
            if method == "POST":
                event = json.dumps(factories.alert(unit=UNIT)).encode()
                body = b'{"note": "seen"}' if path.endswith("/ack") else event
                body = cosignature if path.endswith("/cosignatures") else body
            response = await api.request(
                method, path, content=body, headers={**headers, "content-type": "application/json"}
            )
            actual[caller] = response.status_code
            if response.status_code >= 400:
                assert response.headers["content-type"] == "application/problem+json"
        assert actual == expected


async def _cosignature(runtime: Runtime) -> bytes:
    """A signed checkpoint, and the test witness's cosignature of it (the request's body)."""
    await runtime.ledger.append([CloudEvent.model_validate(factories.seizure())])
    await runtime.ledger.checkpoint_if_due(force=True)
    checkpoint = await witness_store.latest_checkpoint(runtime.ledger.engine)
    assert checkpoint is not None
    private = Ed25519PrivateKey.from_private_bytes(WITNESS_SEED)
    head = (checkpoint.size, checkpoint.head_hash)
    made = witness.cosign(private, "niac.uz/witness", DEFAULT_LEDGER_ORIGIN, head, 1)
    return json.dumps({"note": made.note(DEFAULT_LEDGER_ORIGIN)}).encode()


async def _ready(api: httpx.AsyncClient) -> bool:
    return (await api.get("/readyz")).status_code == 200


async def test_readiness_tells_which_checks_fail_only_to_the_metrics_token(
    runtime: Runtime,
) -> None:
    transport = httpx.ASGITransport(app=create_app(runtime.deps()))
    async with httpx.AsyncClient(transport=transport, base_url="http://liaison") as api:
        await eventually(lambda: _ready(api))
        for caller, authorization in CALLERS.items():
            headers = {"Authorization": authorization} if authorization else {}
            body = (await api.get("/readyz", headers=headers)).json()
            assert ("checks" in body) is (caller == "metrics-token"), caller
            assert body["ready"] is True
