"""Schemathesis against the app's own ``/openapi.json``: no 5xx, every response as declared.

Cases come from schemathesis' Hypothesis strategies and are sent through the test's
in-process ASGI client (the runtime lives on the session's event loop, which schemathesis'
own synchronous ASGI client cannot share), then checked with ``case.validate_response``.
Derandomized and bounded, so CI sees the same few dozen examples per operation every run.
"""

from __future__ import annotations

from typing import Any, cast

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from services.bootstrap import Deps
from services.entrypoints.http import create_app
from tests.integration.conftest import auth

# The schema does not depend on the collaborators; the test checks it is what is served.
SPEC: dict[str, Any] = create_app(cast(Deps, None)).openapi()
SCHEMA = schemathesis.openapi.from_dict(SPEC)
# An SSE stream never ends by itself; the matrix and test_escalation_and_live cover it.
ENDLESS = {("GET", "/v1/units/{unit}/alerts/stream")}
OPERATIONS = sorted(
    (method.upper(), path)
    for path, methods in SPEC["paths"].items()
    for method in methods
    if (method.upper(), path) not in ENDLESS
)
# Readiness answers 503 (declared) while a subscriber is still starting: its contract.
UNAVAILABLE_BY_DESIGN = {"/readyz"}
# A schema-valid event may still name a unit the caller does not publish for (422/403); a
# schema-valid cosignature note is still a signature to check (422 when it is not one).
TOPOLOGY_DEPENDENT = {"/v1/events", "/v1/ledger/cosignatures"}
# since/until also take Unix seconds (pydantic's datetime parsing), which the schema omits.
LENIENT = {"/v1/ledger/events"}
WHO = {
    "/v1/events": "customs",
    "/v1/ledger/cosignatures": "witness",  # the caller it is for: deeper than a 403
    "/v1/ledger": "auditor",
    "/v1/units": "gulistan",
}


def _headers(path: str) -> dict[str, str]:
    return next((auth(who) for prefix, who in WHO.items() if path.startswith(prefix)), {})


def _strategy(method: str, path: str) -> st.SearchStrategy[schemathesis.Case]:
    operation = SCHEMA[path][method]
    # Inboxes of the officer's own unit: deeper than a 403 at the door.
    pinned = {"unit": "IMT-GULISTAN"} if "{unit}" in path else None
    return st.one_of(
        operation.as_strategy(mode, path_parameters=pinned)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    )


async def _send(api: httpx.AsyncClient, case: schemathesis.Case) -> httpx.Response:
    kwargs = case.as_transport_kwargs(base_url=str(api.base_url), headers=_headers(case.path))
    body: dict[str, Any] = {}
    if "json" in kwargs:
        body["json"] = kwargs["json"]
    elif kwargs.get("data") is not None:
        data = kwargs["data"]
        body["content"] = data if isinstance(data, bytes) else str(data).encode()
    return await api.request(
        kwargs["method"],
        kwargs["url"],
        headers=kwargs["headers"],
        params=kwargs.get("params"),
        **body,
    )


async def test_the_served_schema_is_the_one_fuzzed(api: httpx.AsyncClient) -> None:
    assert (await api.get("/openapi.json")).json() == SPEC


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
@settings(
    max_examples=30,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_no_5xx_and_every_response_as_declared(
    api: httpx.AsyncClient, method: str, path: str, data: st.DataObject
) -> None:
    case = data.draw(_strategy(method, path))
    response = await _send(api, case)
    if path not in UNAVAILABLE_BY_DESIGN:
        assert response.status_code < 500, (case.as_curl_command(), response.text)
    excluded = [positive_data_acceptance] if path in TOPOLOGY_DEPENDENT else []
    excluded += [not_a_server_error] if path in UNAVAILABLE_BY_DESIGN else []
    excluded += [negative_data_rejection] if path in LENIENT else []
    case.validate_response(response, excluded_checks=excluded)
