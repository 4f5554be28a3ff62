"""The ``replication`` and ``sentinel`` users of ``deploy/users.acl`` can do their work.

compose.yaml and the Kubernetes ha overlay run Valkey as a primary with replicas watched by
Sentinels, each connecting as its own user. Here a primary and a replica run the shipped
``valkey.conf`` and users (as compose.yaml does: every node knows the replication user, since
a failover can make any node a replica), one Sentinel authenticates as ``sentinel`` with the
rules of ``deploy/sentinel.conf``, and a failover is forced: the replica syncs, the Sentinel
promotes it and turns the old primary into its replica, and neither server refuses a command.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from services.core.redis_server import find_server_binary, free_port
from tests.integration.test_acl import DEPLOY, USERS, _acl_file

pytestmark = pytest.mark.timeout(120)
MASTER_SET = "liaison"


def _until(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (redis.ConnectionError, redis.ResponseError):
            pass
        time.sleep(0.05)
    pytest.fail(f"not within {timeout}s: {what}")


def _sentinel_rules() -> list[str]:
    """The Sentinel's own rules from deploy/sentinel.conf that do not name compose's hosts."""
    kept = []
    for line in (DEPLOY / "sentinel.conf").read_text().splitlines():
        words = line.split()
        if words[:1] == ["sentinel"] and words[1] in ("auth-user", "parallel-syncs"):
            kept.append(line)
    assert any("auth-user liaison sentinel" in line for line in kept)
    return kept


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[tuple[dict[str, int], dict[str, str]]]:
    """A primary, a replica and a Sentinel on free ports; their ports and the passwords."""
    passwords = {user: secrets.token_urlsafe(24) for user in USERS}
    acl = tmp_path / "users.acl"
    acl.write_text(_acl_file(passwords))
    ports = {"primary": free_port(), "replica": free_port(), "sentinel": free_port()}
    server = str(find_server_binary())
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> None:
        started.append(subprocess.Popen([server, *args], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True))  # fmt: skip

    replication = ["--masteruser", "replication", "--masterauth", passwords["replication"]]
    for name in ("primary", "replica"):
        (tmp_path / name).mkdir()
        # a copy: the Sentinel makes each server rewrite its configuration file (CONFIG REWRITE)
        conf = tmp_path / name / "valkey.conf"
        conf.write_text((DEPLOY / "valkey.conf").read_text())
        extra = ["--replicaof", "127.0.0.1", str(ports["primary"])] if name == "replica" else []
        start(str(conf), "--port", str(ports[name]), "--dir", str(tmp_path / name),
              "--aclfile", str(acl), "--logfile", "server.log", *replication, *extra)  # fmt: skip
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        "\n".join([
            f"port {ports['sentinel']}", f"dir {tmp_path}", "logfile sentinel.log",
            f"sentinel monitor {MASTER_SET} 127.0.0.1 {ports['primary']} 1",
            f"sentinel down-after-milliseconds {MASTER_SET} 1000",
            f"sentinel failover-timeout {MASTER_SET} 10000",
            f"sentinel auth-pass {MASTER_SET} {passwords['sentinel']}",
            *_sentinel_rules(), "",
        ])
    )  # fmt: skip
    start(str(conf), "--sentinel")
    try:
        yield ports, passwords
    finally:
        for process in started:
            process.terminate()
            process.wait(10)


def test_a_sentinel_fails_over_with_the_shipped_users(
    nodes: tuple[dict[str, int], dict[str, str]],
) -> None:
    ports, passwords = nodes
    admin = {name: redis.Redis(port=ports[name], username="admin", password=passwords["admin"],
                               decode_responses=True) for name in ("primary", "replica")}  # fmt: skip
    sentinel = redis.Redis(port=ports["sentinel"], decode_responses=True)
    try:
        _until(lambda: admin["replica"].info("replication")["master_link_status"] == "up",
               "the replica synced as the replication user")  # fmt: skip

        def replica_known() -> bool:
            replicas = sentinel.sentinel_slaves(MASTER_SET)
            return any(
                r["master-link-status"] == "ok" and not r["is_disconnected"] for r in replicas
            )

        _until(replica_known, "the Sentinel saw the replica, synced")
        sentinel.execute_command("SENTINEL", "FAILOVER", MASTER_SET)

        def promoted() -> bool:
            _, port = sentinel.sentinel_get_master_addr_by_name(MASTER_SET)
            return (
                int(port) == ports["replica"]
                and admin["replica"].info("replication")["role"] == "master"
            )

        _until(promoted, "the Sentinel promoted the replica")
        _until(lambda: admin["primary"].info("replication").get("master_link_status") == "up",
               "the old primary follows the new one")  # fmt: skip
        for name, client in admin.items():
            assert client.acl_log() == [], f"{name} refused the Sentinel or the replication user"
    finally:
        for client in (*admin.values(), sentinel):
            client.close()
