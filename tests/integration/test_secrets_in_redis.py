"""README, Webhooks: "Secrets never enter Redis" — watched on the wire, not only in what is left.

A whole runtime (HTTP ingest, ledger, notifier, webhook worker) delivers an alert to three endpoints: one that answers 503
once (a retry, then delivered), one that never answers (given up on: an
``alert.webhook_failed``, which must reach the ledger) and one still waiting for its next
attempt. Every command the server receives meanwhile is recorded with
``MONITOR``, so a secret written into a job and deleted with it once the job
is done is seen all the same; then every key and value left is read. Neither
may hold an endpoint's secret (in its ``whsec_`` form, its base64 part or
its raw key bytes), the Ed25519 private key of an endpoint signed asymmetrically
(``whsk_``, Standard Webhooks ``v1a``), a URL's credentials, nor a principal's bearer token.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from services.bootstrap import Runtime
from services.core.config import Webhook
from services.core.settings import Settings
from services.entrypoints.http import create_app
from services.notifier import app as notifier_app
from services.notifier import webhook_signing as signing
from services.notifier.webhooks import WebhookWorker
from tests import factories
from tests.integration.conftest import TOKENS, auth, eventually, principals_config
from tests.integration.test_webhooks import FAST, Receiver, dead_url, receiver

__all__ = ["dead_url", "receiver"]  # fixtures, imported so pytest finds them here

SECRETS = {
    "retried": "whsec_" + base64.b64encode(b"retried-endpoint-secret-32-bytes").decode(),
    "dead": "whsec_" + base64.b64encode(b"dead-endpoint-secret-of-32-bytes").decode(),
    "waiting": "whsec_" + base64.b64encode(b"waiting-endpoint-secret-32-bytes").decode(),
}
SIGNING_KEY = "whsk_" + base64.b64encode(b"asymmetric-endpoint-seed-32bytes").decode()
"""The ``v1a`` (Ed25519) private key of the endpoint waiting for its next attempt."""


def forbidden() -> dict[str, bytes]:
    """What must never reach the server, by name."""
    found: dict[str, bytes] = {}
    for name, secret in SECRETS.items():
        key = secret.removeprefix("whsec_")
        found |= {
            f"{name} secret": secret.encode(),
            f"{name} secret's base64": key.encode(),
            f"{name} key bytes": base64.b64decode(key),
        }
    seed = SIGNING_KEY.removeprefix("whsk_")
    found |= {
        "signing key": SIGNING_KEY.encode(),
        "signing key's base64": seed.encode(),
        "signing key's seed": base64.b64decode(seed),
    }
    found |= {f"{who}'s bearer token": token.encode() for who, token in TOKENS.items()}
    found |= {"URL password": b"hunter2", "URL api_key": b"K3Y-SECRET", "URL token": b"T0K3N"}
    return found


@contextlib.asynccontextmanager
async def monitored(redis_url: str) -> AsyncIterator[list[bytes]]:
    """Every command the server receives meanwhile, as MONITOR prints it (scripts' own
    commands included)."""
    client = Redis.from_url(redis_url, socket_timeout=None)  # quiet moments are not errors
    seen: list[bytes] = []
    async with client.monitor() as monitor:

        async def record() -> None:
            while True:
                line = await monitor.connection.read_response(disable_decoding=True)
                seen.append(line if isinstance(line, bytes) else str(line).encode())

        task = asyncio.create_task(record())
        try:
            yield seen
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    await client.aclose()


def _unescape(line: bytes) -> bytes:
    """MONITOR quotes arguments C-style (``\\xNN``, ``\\"``); the raw bytes back."""
    return line.decode("unicode_escape").encode("latin-1")


async def every_value(redis: Redis) -> bytes:
    """Everything the server holds, as one blob: keys, and the members of every type."""
    out: list[bytes] = []
    async for key in redis.scan_iter(count=1000):
        out.append(key)
        kind = (await redis.type(key)).decode()
        if kind == "string":
            out.append(await redis.get(key) or b"")
        elif kind == "hash":
            for field, value in (await redis.hgetall(key)).items():  # type: ignore[misc]
                out += [field, value]
        elif kind == "stream":
            for _, fields in await redis.xrange(key):
                for field, value in fields.items():
                    out += [field, value]
        elif kind == "zset":
            out += [m for m, _ in await redis.zrange(key, 0, -1, withscores=True)]
        elif kind == "list":
            out += await redis.lrange(key, 0, -1)  # type: ignore[misc]
        elif kind == "set":
            out += list(await redis.smembers(key))  # type: ignore[misc]
        else:
            pytest.fail(f"{key!r}: a {kind} this scan does not read")
    return b"\n".join(out)


async def _answered(recv: Receiver, name: str, count: int) -> bool:
    return len(recv.to(name)) >= count


async def test_no_secret_or_token_reaches_redis_through_deliveries_retries_and_failures(
    redis_url: str,
    redis: Redis,
    data_dir: Path,
    receiver: tuple[Receiver, str],
    dead_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recv, base = receiver
    recv.scripts["fotehobod"] = [(503, {})]  # one retry, then delivered
    recv.scripts["niac"] = [(503, {"Retry-After": "3600"})]  # waits for its next attempt
    host = base.removeprefix("http://")
    hooks = (
        Webhook(
            unit="BLO-FOTEHOBOD",
            url=f"http://siem:hunter2@{host}/fotehobod?api_key=K3Y-SECRET",
            secret=SECRETS["retried"],
            allow_http=True,
        ),
        Webhook(
            unit="IMT-TASHKENT",
            name="tashkent-siem",
            secret=SECRETS["dead"],
            allow_http=True,
            url=dead_url.replace("://", "://ops:swordfish@") + "?token=T0K3N",
        ),
        Webhook(
            unit="NIAC-UZ",
            url=f"{base}/niac",
            secret=SECRETS["waiting"],
            signing_key=SIGNING_KEY,
            allow_http=True,
        ),
    )
    # the runtime's worker on a short schedule, so that the dead endpoint is given up on
    monkeypatch.setattr(
        notifier_app, "WebhookWorker", functools.partial(WebhookWorker, policy=FAST)
    )
    config = principals_config().model_copy(update={"webhooks": hooks})
    settings = Settings(data_dir=data_dir, redis_url=redis_url, database_url=None, config=None)
    alert = factories.alert()
    async with monitored(redis_url) as commands, Runtime(settings, config) as runtime:
        transport = httpx.ASGITransport(app=create_app(runtime.deps()))
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as api:
            assert (
                await api.post("/v1/events", json=alert, headers=auth("customs"))
            ).status_code == 202
            ack = f"/v1/units/IMT-GULISTAN/alerts/{alert['id']}/ack"

            async def acknowledged() -> bool:
                return (await api.post(ack, headers=auth("gulistan"))).status_code == 200

            await eventually(acknowledged)

            async def failure_recorded() -> bool:
                page = await api.get(
                    "/v1/ledger/events?type=alert.webhook_failed", headers=auth("auditor")
                )
                return bool(page.json()["events"])

            await eventually(failure_recorded, timeout=30)
            # README: a delivery given up on is recorded in the ledger as alert.webhook_failed
            page = await api.get(
                "/v1/ledger/events?type=alert.webhook_failed", headers=auth("auditor")
            )
            [failed] = [entry["event"] for entry in page.json()["events"]]
            assert (failed["subject"], failed["data"]["unit"], failed["data"]["endpoint"]) == (
                alert["id"],
                "IMT-TASHKENT",
                "tashkent-siem",
            )
            assert failed["data"]["attempts"] == FAST.max_attempts
            await eventually(lambda: _answered(recv, "fotehobod", 2))
            await eventually(lambda: _answered(recv, "niac", 1))
            assert [r.status for r in recv.to("fotehobod")] == [503, 200]
            assert [r.status for r in recv.to("niac")] == [503]
            # the v1a signature verifies with the public key alone (the spec's definition)
            [niac] = recv.to("niac")
            public = signing.private_key(SIGNING_KEY).public_key()
            v1a = [s for s in niac.headers["webhook-signature"].split() if s.startswith("v1a,")]
            content = f"{niac.headers['webhook-id']}.{niac.headers['webhook-timestamp']}."
            public.verify(base64.b64decode(v1a[0][4:]), content.encode() + niac.body)
    stored = await every_value(redis)
    wire = b"\n".join(map(_unescape, commands))
    assert b'"XADD" "{liaison}:stream:webhooks"' in wire  # MONITOR saw the jobs queued
    for what, value in forbidden().items():
        assert value not in wire, f"{what} was sent to the server"
        assert value not in stored, f"{what} is stored in the server"
