"""``liaison serve api``: the HTTP API and the console as a stateless service of their own.

Two ``serve api`` processes, as the shipped least-privilege ``api`` ACL user, on one Valkey
(started with ``deploy/valkey.conf`` and ``deploy/users.acl``), behind no load balancer: the test
is the load balancer and sends each request of one principal to either process. What one process
accepted the other must know — the event (a re-publish there is a duplicate), the inbox, the
console session (signed in on one, used and ended on the other), the sign-in throttle, and a
live stream opened on one sees what the other published — and no command of either process is
refused by the server (its ACL log stays empty).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from redis.asyncio import Redis

from services.core.redis_server import free_port
from tests import factories
from tests.integration.conftest import auth, principals_config
from tests.integration.console_client import csrf_of
from tests.integration.processes import ServiceProcesses, wait_for
from tests.integration.test_acl import AclServer, acl_server, admin

__all__ = ["acl_server", "admin"]  # fixtures, imported so pytest finds them here

pytestmark = pytest.mark.timeout(180)
INBOX = "/v1/units/IMT-GULISTAN/alerts"
PAGE = "/console/units/IMT-GULISTAN?show=all"


def _config(path: Path) -> Path:
    """The test principals as a configuration file, as a deployment has one."""
    principals = [
        p.model_dump(mode="json", exclude_defaults=True) for p in principals_config().principals
    ]
    path.write_text(yaml.safe_dump({"principals": principals}), encoding="utf-8")
    return path


@pytest.fixture
def processes(acl_server: AclServer, admin: Redis, tmp_path: Path) -> Iterator[ServiceProcesses]:
    """The configuration shared by every process (each runs as its own ACL user), on a server
    ``admin`` emptied first."""
    env = {"LIAISON_CONFIG": str(_config(tmp_path / "liaison.yaml")),
           "LIAISON_DATA_DIR": str(tmp_path / "var")}  # fmt: skip
    running = ServiceProcesses(tmp_path / "logs", env)
    try:
        yield running
    finally:
        running.close()


@pytest.fixture
async def two_apis(acl_server: AclServer, processes: ServiceProcesses) -> tuple[str, str]:
    """A notifier, and two ``serve api`` processes as the ``api`` user; their base URLs."""
    processes.start("notifier", {"LIAISON_REDIS_URL": acl_server.url("notifier")})
    urls = []
    for _ in range(2):
        port = free_port()
        processes.start("api", {"LIAISON_REDIS_URL": acl_server.url("api"),
                                "LIAISON_HTTP_ADDR": f"127.0.0.1:{port}"})  # fmt: skip
        urls.append(f"http://127.0.0.1:{port}")
    async with httpx.AsyncClient(timeout=10) as probe:
        for url in urls:

            async def ready(url: str = url) -> bool:
                try:
                    return (await probe.get(f"{url}/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_for(ready, f"serve api at {url} ready", processes, timeout=60)
    return urls[0], urls[1]


async def _sign_in(http: httpx.AsyncClient, base: str, token: str) -> httpx.Response:
    form = await http.get(f"{base}/console/login")
    return await http.post(
        f"{base}/console/login",
        data={"csrf_token": csrf_of(form.text), "token": token},
        headers={"Origin": base},
    )


async def test_two_api_processes_serve_one_principal_as_one(
    two_apis: tuple[str, str], processes: ServiceProcesses, admin: Redis
) -> None:
    a, b = two_apis
    alert = factories.alert()
    async with httpx.AsyncClient(timeout=10) as http:
        published = await http.post(f"{a}/v1/events", json=alert, headers=auth("customs"))
        assert published.status_code == 202, published.text
        again = await http.post(f"{b}/v1/events", json=alert, headers=auth("customs"))
        assert again.json()["duplicates"] == [alert["id"]], again.text

        async def in_the_inbox_on_b() -> bool:
            page = (await http.get(f"{b}{INBOX}", headers=auth("gulistan"))).json()
            return [d["alert_id"] for d in page.get("alerts", [])] == [alert["id"]]

        await wait_for(in_the_inbox_on_b, "the alert in the inbox, read on B", processes)

        # the console: signed in on A, the session works on B, and signing out on B ends it on A
        signed_in = await _sign_in(http, a, "gulistan-officer-token")
        assert signed_in.status_code == 303, signed_in.text
        page = await http.get(f"{b}{PAGE}")
        assert page.status_code == 200, page.text
        assert alert["id"] in page.text
        out = await http.post(f"{b}/console/logout", data={"csrf_token": csrf_of(page.text)},
                              headers={"Origin": b})  # fmt: skip
        assert out.status_code == 303, out.text
        ended = await http.get(f"{a}{PAGE}")
        assert ended.status_code == 303, ended.text
        assert "/console/login" in ended.headers["location"]

        # a live stream on B sees what A accepts
        second = factories.alert()
        async with http.stream("GET", f"{b}{INBOX}/stream", headers=auth("gulistan")) as live:
            assert live.status_code == 200
            sent = await http.post(f"{a}/v1/events", json=second, headers=auth("customs"))
            assert sent.status_code == 202, sent.text
            async with asyncio.timeout(30):
                async for line in live.aiter_lines():
                    if (
                        line.startswith("data:")
                        and json.loads(line[5:]).get("alert_id") == second["id"]
                    ):
                        break

        # the sign-in throttle is shared: wrong tokens tried on A make B wait too
        for _ in range(5):
            wrong = await _sign_in(http, a, "not-a-token")
            assert wrong.status_code == 401, wrong.text
        assert (await _sign_in(http, b, "not-a-token")).status_code == 429
    assert await admin.acl_log() == [], processes.logs()  # nothing either process ran was refused
