"""A PostgreSQL primary and its synchronous standby, each on a host of its own.

``synchronous_standby_names = '*'`` and ``synchronous_commit = on``: a commit returns only
once the standby has it, so promoting the standby loses no commit a client was told of —
what the ledger needs, since it acknowledges stream entries after committing them
(README "Running on several hosts"). ``fsync`` is off (tests): a SIGKILL of the primary's
host kills the processes, not the machine's page cache.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.support.pg import PostgresUnavailable, missing


def _as_postgres(launcher: Sequence[str], *args: str) -> None:
    command = [*launcher, "runuser", "-u", "postgres", "--", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {done.stderr or done.stdout}")


@dataclass
class PgNode:
    """One PostgreSQL server on ``host`` (listening there only)."""

    root: Path
    host: str
    port: int
    launcher: Sequence[str]

    @property
    def data(self) -> Path:
        """Its data directory."""
        return self.root / "data"

    def start(self) -> None:
        """Start it and wait until it accepts connections (or has begun recovery)."""
        options = f"-c listen_addresses={self.host} -c port={self.port} -c fsync=off"
        options += f" -c unix_socket_directories={self.root}"
        _as_postgres(self.launcher, _bin("pg_ctl"), "-D", str(self.data), "-o", options, "-w",
                     "-t", "60", "-l", str(self.root / "log"), "start")  # fmt: skip

    def promote(self) -> None:
        """Make this standby the primary."""
        _as_postgres(self.launcher, _bin("pg_ctl"), "-D", str(self.data), "-w", "promote")


@dataclass
class PgPair:
    """A primary and a synchronous standby; :attr:`url` names both (multi-host)."""

    hosts: tuple[str, str]
    launchers: tuple[Sequence[str], Sequence[str]]
    subnet: str
    nodes: list[PgNode] = field(default_factory=list)
    directory: Path = field(init=False)

    def __post_init__(self) -> None:
        reason = missing()
        if reason:
            raise PostgresUnavailable(reason)
        # Not under pytest's tmp_path: the postgres account cannot enter root's 0700 folders.
        self.directory = Path(tempfile.mkdtemp(prefix="liaison-failover-pg-"))
        shutil.chown(self.directory, "postgres")
        for i in range(2):
            root = self.directory / f"pg{i}"
            root.mkdir(parents=True)
            shutil.chown(root, "postgres")
            self.nodes.append(PgNode(root, self.hosts[i], 5432, self.launchers[i]))

    @property
    def url(self) -> str:
        """Both hosts, the one that takes writes chosen at connect time."""
        hosts = "&".join(f"host={n.host}:{n.port}" for n in self.nodes)
        return f"postgresql+asyncpg://liaison@/postgres?{hosts}&target_session_attrs=read-write"

    def start(self) -> PgPair:
        """Create and start the primary, then clone it into the standby and start that."""
        primary, standby = self.nodes
        _as_postgres((), _bin("initdb"), "-D", str(primary.data), "-U", "liaison",
                     "--auth=trust", "-E", "UTF8", "--no-sync")  # fmt: skip
        with (primary.data / "postgresql.conf").open("a") as conf:
            conf.write(
                "wal_level = replica\nmax_wal_senders = 5\nhot_standby = on\n"
                "synchronous_standby_names = '*'\nsynchronous_commit = on\n"
                "wal_sender_timeout = 5s\nwal_receiver_timeout = 5s\n"
            )
        with (primary.data / "pg_hba.conf").open("a") as hba:
            hba.write(
                f"host all all {self.subnet}.0/24 trust\n"
                f"host replication all {self.subnet}.0/24 trust\n"
            )
        primary.start()
        _as_postgres(standby.launcher, _bin("pg_basebackup"), "-h", primary.host, "-p",
                     str(primary.port), "-U", "liaison", "-D", str(standby.data), "-R",
                     "-X", "stream")  # fmt: skip
        standby.start()
        return self

    def promote_standby(self) -> None:
        """Promote the standby (its primary is gone) and let it commit alone, as an operator
        or Patroni would once no standby is left to wait for."""
        standby = self.nodes[1]
        standby.promote()
        self._psql(standby, "ALTER SYSTEM SET synchronous_standby_names = ''")
        self._psql(standby, "SELECT pg_reload_conf()")

    def _psql(self, node: PgNode, sql: str) -> str:
        done = subprocess.run(
            [*node.launcher, "runuser", "-u", "postgres", "--", _bin("psql"), "-h", node.host,
             "-p", str(node.port), "-U", "liaison", "-d", "postgres", "-Atc", sql],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"psql {sql!r}: {done.stderr}")
        return done.stdout

    def remove(self) -> None:
        """Delete the data (every process of both hosts must be gone)."""
        shutil.rmtree(self.directory, ignore_errors=True)

    def wait_streaming(self, timeout: float = 30) -> None:
        """Until the standby is attached as the synchronous one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = self._psql(self.nodes[0], "SELECT sync_state FROM pg_stat_replication")
            if "sync" in states.split():
                return
            time.sleep(0.2)
        raise AssertionError(f"the standby did not attach within {timeout}s")


def _bin(name: str) -> str:
    found = shutil.which(name) or next(
        (str(p) for p in Path("/usr/lib/postgresql").glob(f"*/bin/{name}")), None
    )
    if not found:
        raise PostgresUnavailable(f"{name} not found")
    return found
