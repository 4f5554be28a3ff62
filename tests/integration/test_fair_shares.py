"""Fair shares (issue 21): one agency's runaway system does not starve the others.

Two API processes (two runtimes, each with its own clients and app) on one server; the
flooding publisher has ``limits`` in the configuration, the other publisher none. The
flooder's bucket is shared by both processes (in Redis): spreading its requests over them
gets it no more than its share; over it, 429 with ``Retry-After`` and a problem document;
the other publisher is accepted throughout. Counted per publisher in ``/metrics``.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from services.bootstrap import Runtime
from services.core.auth import token_digest
from services.core.config import FileConfig, Principal, PublisherLimits, Role
from services.core.settings import Settings
from services.entrypoints.http import create_app
from services.ingest.quotas import Quotas
from tests import factories
from tests.integration.conftest import eventually
from tests.integration.test_acl import AclServer, acl_server
from tests.integration.test_metrics import parse, value

pytestmark = pytest.mark.integration
__all__ = ["acl_server"]  # a fixture, imported so pytest finds it here

FLOODER, CALM, METRICS = "flooder-token", "calm-token", "metrics-token"
RATE, BURST, BATCH = 5.0, 20, 10


def _config() -> FileConfig:
    limits = PublisherLimits(events_per_second=RATE, burst=BURST, max_batch=BATCH)
    return FileConfig(
        principals=(
            Principal(name="runaway", role=Role.PUBLISHER, token_sha256=token_digest(FLOODER),
                      units=("BLO-OYBEK",), limits=limits),
            Principal(name="calm", role=Role.PUBLISHER, token_sha256=token_digest(CALM),
                      units=("IMT-GULISTAN",)),
        )
    )  # fmt: skip


@pytest.fixture
async def apis(redis_url: str, data_dir: Path) -> AsyncIterator[list[httpx.AsyncClient]]:
    """Two API processes' apps on the same server."""
    settings = Settings(
        data_dir=data_dir,
        redis_url=redis_url,
        database_url=None,
        config=None,
        metrics_token_sha256=token_digest(METRICS),
    )
    async with AsyncExitStack() as stack:
        clients = []
        for _ in range(2):
            runtime = await stack.enter_async_context(
                Runtime(settings, _config(), services=("ingest",))
            )
            transport = httpx.ASGITransport(app=create_app(runtime.deps()))
            client = httpx.AsyncClient(transport=transport, base_url="http://liaison")
            clients.append(await stack.enter_async_context(client))
        yield clients


async def _post(
    api: httpx.AsyncClient, token: str, events: list[dict[str, object]]
) -> httpx.Response:
    return await api.post("/v1/events", json=events, headers={"Authorization": f"Bearer {token}"})


async def test_a_flooding_publisher_gets_its_share_and_the_others_theirs(
    apis: list[httpx.AsyncClient],
) -> None:
    """Spread over two processes, the flooder gets its burst, then 429s with Retry-After; the
    calm publisher is accepted every time meanwhile."""
    numbers = itertools.count()
    started = time.monotonic()
    accepted, refused = 0, []
    calm_statuses = []
    for round_ in range(12):
        api = apis[round_ % 2]
        batch = [factories.alert("BLO-OYBEK", id=f"FLOOD-{next(numbers)}") for _ in range(BATCH)]
        response = await _post(api, FLOODER, batch)
        if response.status_code == 202:
            accepted += BATCH
        else:
            refused.append(response)
        calm = [factories.seizure("IMT-GULISTAN", id=f"CALM-{round_}")]
        calm_statuses.append((await _post(apis[1 - round_ % 2], CALM, calm)).status_code)
    elapsed = time.monotonic() - started
    assert calm_statuses == [202] * 12
    # its share across both processes: the burst plus what refilled meanwhile, never the 120 sent
    assert BURST <= accepted <= BURST + RATE * elapsed + BATCH
    assert refused, "the flooder was never refused"
    first = refused[0]
    assert first.status_code == 429
    assert first.headers["content-type"] == "application/problem+json"
    assert int(first.headers["retry-after"]) >= 1
    problem = first.json()
    assert problem["status"] == 429
    assert "runaway" in problem["detail"]
    assert "5 events per second" in problem["detail"]


async def test_waiting_as_told_is_admitted(apis: list[httpx.AsyncClient]) -> None:
    """A refused publisher that waits its Retry-After is accepted again (by either process)."""
    batch = [factories.alert("BLO-OYBEK", id=f"WAIT-{n}") for n in range(BATCH)]
    assert (await _post(apis[0], FLOODER, batch)).status_code == 202
    assert (await _post(apis[1], FLOODER, batch)).status_code == 202
    again = [factories.alert("BLO-OYBEK", id=f"WAIT-again-{n}") for n in range(BATCH)]
    refused = await _post(apis[0], FLOODER, again)
    assert refused.status_code == 429
    wait = int(refused.headers["retry-after"])
    assert wait <= BATCH / RATE + 1
    await asyncio.sleep(wait)  # what the publisher is told to do; the bucket refills by then
    assert (await _post(apis[1], FLOODER, again)).status_code == 202


async def test_a_batch_over_the_publishers_size_is_refused_whole(
    apis: list[httpx.AsyncClient],
) -> None:
    batch = [factories.alert("BLO-OYBEK", id=f"BIG-{n}") for n in range(BATCH + 1)]
    response = await _post(apis[0], FLOODER, batch)
    assert response.status_code == 413
    assert f"at most {BATCH} events per request" in response.json()["detail"]


async def test_metrics_count_each_publishers_events(apis: list[httpx.AsyncClient]) -> None:
    for n in range(4):
        batch = [factories.alert("BLO-OYBEK", id=f"M-{n}-{k}") for k in range(BATCH)]
        await _post(apis[0], FLOODER, batch)
    await _post(apis[0], CALM, [factories.seizure("IMT-GULISTAN", id="M-calm")])

    async def counted() -> bool:
        response = await apis[0].get("/metrics", headers={"Authorization": f"Bearer {METRICS}"})
        samples = parse(response.text)
        name = "liaison_publisher_events_total"
        limited = value(samples, name, publisher="runaway", outcome="limited")
        return (
            (value(samples, name, publisher="runaway", outcome="accepted") or 0) >= BURST
            and limited is not None
            and limited >= BATCH
            and value(samples, name, publisher="calm", outcome="accepted") == 1
        )

    await eventually(counted)


def test_limits_belong_to_publishers_and_fit_their_burst() -> None:
    with pytest.raises(ValidationError, match="only a publisher has 'limits'"):
        Principal(name="officer", role=Role.OFFICER, token_sha256="0" * 64, unit="IMT-GULISTAN",
                  limits=PublisherLimits(events_per_second=1, burst=1))  # fmt: skip
    with pytest.raises(ValidationError, match=r"max_batch \(50\) is more than burst \(10\)"):
        PublisherLimits(events_per_second=1, burst=10, max_batch=50)
    assert PublisherLimits(events_per_second=1, burst=10).batch == 10
    assert PublisherLimits(events_per_second=1, burst=5000).batch == 1000


async def test_the_api_user_may_keep_the_buckets(acl_server: AclServer) -> None:
    """Under the shipped ACL (deploy/users.acl) the api user (``liaison serve api``, which
    answers publishers) runs the bucket's script."""
    api = acl_server.client("api")
    try:
        quotas = Quotas(api)
        limits = PublisherLimits(events_per_second=1, burst=2)
        publisher = Principal(name="runaway", role=Role.PUBLISHER, token_sha256="0" * 64,
                              units=("BLO-OYBEK",), limits=limits)  # fmt: skip
        assert await quotas.wait(publisher, 2) == 0
        assert await quotas.wait(publisher, 2) > 0
    finally:
        await api.aclose()
