"""The shipped ACL users (``deploy/users.acl``) on a real Valkey started with ``deploy/valkey.conf``.

Each service runs its real code paths as its own user and everything works
end to end, with nothing refused along the way; and each user is refused
what is not its business. The test fills the template's placeholder hashes
with fresh passwords, so the rules checked are the shipped ones.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError

from services.bootstrap import Runtime
from services.core import streams
from services.core.auth import token_digest
from services.core.config import Webhook
from services.core.redis_server import find_server_binary, free_port
from services.core.settings import Settings
from services.entrypoints.http import create_app
from services.ingest import dlq
from services.notifier.inbox import RedisInbox
from tests import factories
from tests.integration.conftest import TOKENS, auth, eventually, principals_config
from tests.integration.console_client import sign_in
from tests.integration.test_webhooks import SECRET, Receiver, receiver

__all__ = ["receiver"]  # a fixture, imported so pytest finds it here

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PLACEHOLDER = re.compile(r"#<([a-z-]+)-sha256>")
USERS = ("admin", "agency", "api", "ingest", "ledger", "notifier", "ops", "replication", "sentinel")
AGENCY_PUBLISHER = "uz-customs"
"""The publisher principal whose ingress the shipped ``agency`` user is filled in for."""
OWN_INGRESS = streams.ingress_stream(AGENCY_PUBLISHER)
OTHER_INGRESS = streams.ingress_stream("uz-mia")


def _sha256(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


@dataclass(frozen=True)
class AclServer:
    """A Valkey running the shipped configuration, and the password of each user."""

    port: int
    passwords: dict[str, str]

    def url(self, user: str, password: str | None = None) -> str:
        """``redis://user:password@127.0.0.1:port/0``."""
        return f"redis://{user}:{password or self.passwords[user]}@127.0.0.1:{self.port}/0"

    def client(self, user: str) -> Redis:
        """An asyncio client authenticated as ``user``."""
        return Redis.from_url(self.url(user))


def _acl_file(passwords: dict[str, str]) -> str:
    template = (DEPLOY / "users.acl").read_text().replace("<agency-publisher>", AGENCY_PUBLISHER)
    return PLACEHOLDER.sub(lambda m: f"#{_sha256(passwords[m[1]])}", template)


def _wait_ready(process: subprocess.Popen[bytes], admin: redis.Redis, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "valkey-server exited: see server.log"
        try:
            if admin.ping():
                return
        except (redis.ConnectionError, redis.BusyLoadingError):
            time.sleep(0.02)
    pytest.fail(f"valkey-server not ready within {timeout}s")


@pytest.fixture(scope="module")
def acl_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AclServer]:
    """valkey-server with ``deploy/valkey.conf`` and the ACL template filled with fresh passwords."""
    directory = tmp_path_factory.mktemp("valkey-acl")
    passwords = {user: secrets.token_urlsafe(24) for user in USERS}
    (directory / "users.acl").write_text(_acl_file(passwords))
    port = free_port()
    process = subprocess.Popen(
        [str(find_server_binary()), str(DEPLOY / "valkey.conf"),
         "--port", str(port), "--dir", str(directory),
         "--aclfile", str(directory / "users.acl"), "--logfile", "server.log"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    admin = redis.Redis(port=port, username="admin", password=passwords["admin"])
    try:
        _wait_ready(process, admin, timeout=15)
        yield AclServer(port, passwords)
    finally:
        admin.close()
        process.terminate()
        process.wait(10)


@pytest.fixture
async def admin(acl_server: AclServer) -> AsyncIterator[Redis]:
    """The admin user's client, on an emptied server with an empty ACL log."""
    client = acl_server.client("admin")
    await client.flushall()
    await client.acl_log_reset()
    yield client
    await client.aclose()


def test_the_shipped_acl_file_holds_hashes_only_and_disables_the_default_user() -> None:
    lines = [line.split() for line in (DEPLOY / "users.acl").read_text().splitlines() if line]
    users = {words[1]: words[2:] for words in lines}
    assert set(users) == {"default", *USERS}
    assert "off" in users["default"]
    assert "-@all" in users["default"]
    for name in USERS:
        rules = users[name]
        assert f"#<{name}-sha256>" in rules, name
        assert not [r for r in rules if r.startswith(">") or r == "nopass"], name
    assert "aclfile /etc/valkey/users.acl" in (DEPLOY / "valkey.conf").read_text()


async def _ledger_types(api: httpx.AsyncClient) -> list[str]:
    page = (await api.get("/v1/ledger/events?limit=1000", headers=auth("auditor"))).json()
    return [entry["event"]["type"] for entry in page["events"]]


async def test_every_service_works_as_its_own_user_and_nothing_is_refused(  # strict durability
    acl_server: AclServer, admin: Redis, data_dir: Path, receiver: tuple[Receiver, str]
) -> None:
    recv, base = receiver
    hook = Webhook(unit="IMT-GULISTAN", url=f"{base}/gulistan", secret=SECRET, allow_http=True)
    config = principals_config().model_copy(update={"webhooks": (hook,)})
    alert, seizure = factories.alert(), factories.seizure()
    async with AsyncExitStack() as stack:
        for service in ("notifier", "ledger", "ingest"):  # consumers only, as `liaison serve`
            settings = Settings(data_dir=data_dir, redis_url=acl_server.url(service),
                                database_url=None, config=None, durability="strict")  # fmt: skip
            await stack.enter_async_context(Runtime(settings, config, (service,)))
        # `liaison serve api`: every HTTP request (and the console) as the `api` user
        settings = Settings(data_dir=data_dir, redis_url=acl_server.url("api"),
                            database_url=None, config=None, durability="strict",
                            metrics_token_sha256=token_digest(TOKENS["metrics"]))  # fmt: skip
        runtime = await stack.enter_async_context(Runtime(settings, config, ()))
        transport = httpx.ASGITransport(app=create_app(runtime.deps()))
        api = await stack.enter_async_context(
            httpx.AsyncClient(transport=transport, base_url="http://liaison")
        )
        published = await api.post("/v1/events", json=alert, headers=auth("customs"))
        assert published.status_code < 300, published.text
        again = await api.post("/v1/events", json=alert, headers=auth("customs"))
        assert again.json()["duplicates"] == [alert["id"]], again.text
        await api.post("/v1/events", json=seizure, headers=auth("mia"))
        agency = acl_server.client("agency")
        stack.push_async_callback(agency.aclose)
        raw = factories.seizure(unit="BLO-OYBEK", grams=5)  # one of uz-customs' units
        await agency.xadd(OWN_INGRESS, {streams.EVENT_FIELD: _json(raw)})
        await agency.xadd(OWN_INGRESS, {streams.EVENT_FIELD: b"not json"})

        inbox = "/v1/units/IMT-GULISTAN/alerts"

        async def delivered() -> bool:
            page = (await api.get(inbox, headers=auth("gulistan"))).json()
            return [a["alert_id"] for a in page.get("alerts", [])] == [alert["id"]]

        await eventually(delivered)
        ack = await api.post(f"{inbox}/{alert['id']}/ack", headers=auth("gulistan"))
        assert ack.status_code < 300, ack.text
        await sign_in(api, "gulistan")  # the console: sessions and sign-in throttle in Redis
        page = await api.get("/console/units/IMT-GULISTAN?show=all")
        assert page.status_code == 200, page.text
        assert alert["id"] in page.text
        assert (await api.get("/readyz")).json() == {"ready": True}
        metrics = await api.get("/metrics", headers=auth("metrics"))  # the streams' figures
        assert "liaison_redis_scrape_ok 1.0" in metrics.text
        # ingest reads the notifier's register (and its own index) to refuse another unit's change
        foreign = factories.event(
            "alert.closed", "BLO-AYRITOM", {"reason": "x"}, subject=alert["id"]
        )
        refused = await api.post("/v1/events", json=foreign, headers=auth("customs"))
        assert refused.status_code == 409, refused.text
        # the API reads and writes the register of operations, the notifier too (issue 20)
        now = datetime.now(UTC)
        opened = factories.event(
            "operation.opened",
            "BLO-OYBEK",
            {"name": "OP-ACL", "members": ["IMT-NUKUS"], "start": now.isoformat(),
             "end": (now + timedelta(days=1)).isoformat()},
        )  # fmt: skip
        in_operation = factories.alert(operation="OP-ACL")
        for event in (opened, in_operation):
            sent = await api.post("/v1/events", json=event, headers=auth("customs"))
            assert sent.status_code == 202, sent.text
        await eventually(lambda: _arrived(recv))

        async def recorded() -> bool:
            kinds = Counter(await _ledger_types(api))
            wanted = {"alert.raised": 2, "seizure.reported": 2, "alert.acknowledged": 1,
                      "operation.opened": 1}  # fmt: skip
            return kinds["alert.delivered"] >= 2 and all(kinds[k] == n for k, n in wanted.items())

        await eventually(recorded)

        ops = acl_server.client("ops")
        stack.push_async_callback(ops.aclose)
        [letter] = await dlq.list_dead_letters(ops, 10)
        assert letter.origin == OWN_INGRESS
        [item] = await RedisInbox(ops).list("IMT-GULISTAN")
        assert item["alert_id"] == alert["id"]
        assert item["acknowledged_at"]
    assert await admin.acl_log() == []  # no command of any service was refused


async def _arrived(recv: Receiver) -> bool:
    return bool(recv.to("gulistan"))


def _json(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


INBOX = streams.inbox_key("IMT-GULISTAN")
READ_AS_LEDGER = ("XREADGROUP", "GROUP", streams.LEDGER_GROUP, "x", "STREAMS", streams.SEIZURES, ">")  # fmt: skip
# Tries a command the caller may run (XRANGE) on a key it may not read, from inside a script.
SNEAK_LUA = "return redis.call('XRANGE', KEYS[1], '-', '+')"

REFUSED: list[tuple[str, tuple[Any, ...]]] = [
    ("ingest", ("HGETALL", INBOX)),
    ("ingest", ("XRANGE", streams.SEIZURES, "-", "+")),
    ("ingest", READ_AS_LEDGER),
    ("ingest", ("XADD", streams.RECEIPTS, "*", "f", "v")),
    ("ingest", ("EVAL", SNEAK_LUA, 1, streams.SEIZURES)),
    ("ingest", ("HSET", streams.ALERT_ORIGINS, "BT-1", "/units/BLO-FOTEHOBOD")),
    ("ledger", ("HGETALL", INBOX)),
    ("ledger", ("HSET", INBOX, "a", "b")),
    ("ledger", ("XADD", streams.ALERTS, "*", "f", "v")),
    ("ledger", ("XRANGE", streams.DEAD_LETTERS, "-", "+")),
    ("notifier", ("XRANGE", streams.SEIZURES, "-", "+")),
    ("notifier", READ_AS_LEDGER),
    ("notifier", ("XADD", streams.ALERTS, "*", "f", "v")),
    ("notifier", ("XADD", streams.SEIZURES, "*", "f", "v")),
    # `liaison serve api` publishes and acknowledges through scripts (whose appends it may
    # therefore make), reads inboxes, keeps console sessions: it consumes no stream
    ("api", READ_AS_LEDGER),
    ("api", ("XRANGE", streams.SEIZURES, "-", "+")),
    ("api", ("XRANGE", streams.DEAD_LETTERS, "-", "+")),
    ("api", ("XADD", OWN_INGRESS, "*", "f", "v")),
    ("api", ("XADD", streams.DEAD_LETTERS, "*", "f", "v")),
    ("api", ("XACK", streams.ALERTS, streams.NOTIFIER_GROUP, "0-1")),
    ("api", ("HSET", INBOX, "a", "b")),
    ("api", ("DEL", INBOX)),
    ("api", ("HSET", streams.ALERT_ORIGINS, "BT-1", "/units/BLO-FOTEHOBOD")),
    ("api", ("EVAL", SNEAK_LUA, 1, streams.SEIZURES)),
    ("api", ("KEYS", "*")),
    ("api", ("CONFIG", "GET", "*")),
    ("api", ("FLUSHALL",)),
    ("ops", ("XADD", streams.DEAD_LETTERS, "*", "f", "v")),
    ("ops", ("HSET", INBOX, "a", "b")),
    ("ops", ("XRANGE", streams.SEIZURES, "-", "+")),
    # the replicas' and the Sentinels' users (compose.yaml, deploy/k8s) touch no key
    ("replication", ("XRANGE", streams.SEIZURES, "-", "+")),
    ("replication", ("GET", "x")),
    ("sentinel", ("XRANGE", streams.SEIZURES, "-", "+")),
    ("sentinel", ("HGETALL", INBOX)),
    ("sentinel", ("CONFIG", "GET", "*")),
    ("sentinel", ("FLUSHALL",)),
    ("agency", ("XRANGE", OWN_INGRESS, "-", "+")),
    ("agency", ("XTRIM", OWN_INGRESS, "MAXLEN", "0")),
    ("agency", ("XDEL", OWN_INGRESS, "0-1")),
    ("agency", ("XADD", OTHER_INGRESS, "*", "f", "v")),
    ("agency", ("XADD", f"{streams.PREFIX}:stream:ingress", "*", "f", "v")),  # the old shared one
    ("agency", ("XADD", streams.ALERTS, "*", "f", "v")),
    ("agency", ("FLUSHALL",)),
]


@pytest.mark.parametrize(("user", "command"), REFUSED, ids=lambda v: str(v)[:40])
async def test_each_user_is_refused_what_is_not_its_business(
    acl_server: AclServer, admin: Redis, user: str, command: tuple[Any, ...]
) -> None:
    await admin.xadd(streams.SEIZURES, {"f": "v"})
    client = acl_server.client(user)
    try:
        with pytest.raises(NoPermissionError):
            await client.execute_command(*command)
    finally:
        await client.aclose()


async def test_a_script_cannot_reach_a_key_its_user_may_not_read(
    acl_server: AclServer, admin: Redis
) -> None:
    await admin.xadd(streams.SEIZURES, {"f": "v"})
    client = acl_server.client("notifier")  # may run scripts, and XREVRANGE on its feeds
    try:
        sha = await client.script_load("return redis.call('XREVRANGE', KEYS[1], '+', '-')")
        with pytest.raises(ResponseError, match=r"(?i)permission"):
            await client.evalsha(sha, 1, streams.SEIZURES)
    finally:
        await client.aclose()


@pytest.mark.parametrize("user", ["default", "ingest"])
async def test_no_way_in_without_the_right_password(acl_server: AclServer, user: str) -> None:
    client = Redis.from_url(acl_server.url(user, "wrong"))
    try:
        with pytest.raises(AuthenticationError):
            await client.ping()
    finally:
        await client.aclose()
    anonymous = Redis(port=acl_server.port)
    try:
        with pytest.raises(AuthenticationError):
            await anonymous.ping()
    finally:
        await anonymous.aclose()


MAX_ID = "18446744073709551615-18446744073709551615"
ATTACKS = {
    "erase": ("MAXLEN", "0", "*"),  # trims the stream to nothing: every unread entry gone
    "block": (MAX_ID,),  # the largest id: no later append can have a greater one
}


@pytest.mark.parametrize("attack", list(ATTACKS))
async def test_an_agency_can_neither_erase_nor_block_another_agencys_ingress(
    acl_server: AclServer, admin: Redis, attack: str
) -> None:
    """Issue 13.7: ACLs cannot restrict XADD's arguments, so each agency has a stream of its
    own; what it does to its own stream stays there."""
    for n in range(2):  # the other agency's unread entries
        await admin.xadd(OTHER_INGRESS, {streams.EVENT_FIELD: f"mia {n}"})
    agency = acl_server.client("agency")
    try:
        with pytest.raises(NoPermissionError):
            await agency.execute_command("XADD", OTHER_INGRESS, *ATTACKS[attack], "__data__", "x")
        # on its own stream it may, and harms only itself
        await agency.xadd(OWN_INGRESS, {streams.EVENT_FIELD: "customs"})
        await agency.execute_command("XADD", OWN_INGRESS, *ATTACKS[attack], "__data__", "x")
    finally:
        await agency.aclose()
    assert [f[b"__data__"] for _, f in await admin.xrange(OTHER_INGRESS)] == [b"mia 0", b"mia 1"]
    assert await admin.xadd(OTHER_INGRESS, {streams.EVENT_FIELD: "mia 2"})  # still appends


async def test_an_agency_confirms_its_own_appends_with_waitaof(
    acl_server: AclServer, admin: Redis
) -> None:
    """README, Durability: an agency that XADDs to its ingress itself gets its acknowledgement
    from the server, and the shipped ``agency`` user may run ``WAITAOF`` to wait for the fsync."""
    agency = acl_server.client("agency")
    try:
        await agency.xadd(OWN_INGRESS, {streams.EVENT_FIELD: "customs"})
        assert await agency.execute_command("WAITAOF", 1, 0, 5000) == [1, 0]
    finally:
        await agency.aclose()
