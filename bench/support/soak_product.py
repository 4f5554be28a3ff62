"""What the soak (:mod:`bench.soak`) runs against: ``liaison up`` with its configuration,
a flaky webhook receiver, and readings of its processes and its server.

The configuration: two publishers (``uz-customs`` for the BLOs, ``uz-mia`` for the IMTs),
one officer per unit (each holds its unit's live stream and acknowledges), one auditor
(reads the ledger and signs in to the console), webhooks for three units to the flaky
receiver, and short acknowledgement deadlines so that unacknowledged flash alerts escalate
within the run. Retention windows are compressed like the day (``INBOX_RETENTION``,
``DEDUPE_WINDOW``): the run reaches the steady state a real deployment reaches in days.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml
from redis.asyncio import Redis

from bench.support.peer_products import free_port
from bench.support.procs import command_line, descendants, sample
from services.core import streams
from services.core.auth import token_digest

LIAISON = Path(sys.executable).parent / "liaison"
PUBLISHERS = {
    "uz-customs": ("BLO-OYBEK", "BLO-AYRITOM", "BLO-SARIOSIYO", "BLO-DUSTLIK"),
    "uz-mia": ("IMT-TERMEZ", "IMT-GULISTAN", "IMT-FERGHANA"),
}
UNITS = (
    *("NIAC-UZ", "IMT-TASHKENT", "IMT-GULISTAN", "IMT-FERGHANA", "IMT-SAMARKAND"),
    *("IMT-TERMEZ", "IMT-NUKUS", "BLO-DUSTLIK", "BLO-OYBEK", "BLO-SARIOSIYO", "BLO-AYRITOM"),
    *("BLO-DOSTUK", "BLO-FOTEHOBOD", "BLO-TURSUNZODA", "BLO-HAIRATAN"),
)
WEBHOOK_UNITS = ("IMT-GULISTAN", "IMT-TASHKENT", "NIAC-UZ")
SECRET = "whsec_c29hay1iZW5jaC1zZWNyZXQtMDEyMzQ1Njc4OWFiY2Q="
AUDITOR = "soak-auditor-token"


def token(name: str) -> str:
    """The (made-up) token of a principal of the soak."""
    return f"soak-token-{name}"


def officer(unit: str) -> str:
    """The officer principal of a unit."""
    return f"officer-{unit.lower()}"


def config(receiver_port: int) -> dict[str, object]:
    """The soak's ``LIAISON_CONFIG``."""
    principals: list[dict[str, object]] = [
        {"name": n, "role": "publisher", "token_sha256": token_digest(token(n)), "units": list(u)}
        for n, u in PUBLISHERS.items()
    ]
    principals += [
        {
            "name": officer(unit),
            "role": "officer",
            "token_sha256": token_digest(token(officer(unit))),
            "unit": unit,
            "person": f"Duty officer of {unit}",
        }
        for unit in UNITS
    ]
    principals.append({"name": "auditor", "role": "auditor", "token_sha256": token_digest(AUDITOR)})
    webhooks = [
        {
            "unit": unit,
            "url": f"http://127.0.0.1:{receiver_port}/{unit}",
            "secret": SECRET,
            "allow_http": True,
        }
        for unit in WEBHOOK_UNITS
    ]
    deadlines = {"flash": "45s", "urgent": "1h", "routine": "24h"}
    return {"principals": principals, "webhooks": webhooks, "ack_deadlines": deadlines}


class FlakyReceiver:
    """A webhook receiver that fails 20 % of deliveries (500), delays 5 % by 2 s, else 200."""

    def __init__(self, seed: int = 21) -> None:
        self.random = random.Random(seed)
        self.ok = self.failed = self.slow = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        """Listen on a loopback port; returns it."""
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening."""
        if self.server is not None:
            self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                roll = self.random.random()
                if roll < 0.20:
                    self.failed += 1
                    status = b"500 Internal Server Error"
                else:
                    if roll < 0.25:
                        self.slow += 1
                        await asyncio.sleep(2)
                    self.ok += 1
                    status = b"200 OK"
                writer.write(b"HTTP/1.1 " + status + b"\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:  # the run is over: end quietly
            pass
        finally:
            writer.close()


@dataclass
class Product:
    """A running ``liaison up``."""

    proc: subprocess.Popen[bytes]
    base: str
    redis: Redis

    def memory(self) -> dict[str, float]:
        """Resident MB of each process, by role (main, webhooks, valkey)."""
        found: dict[str, float] = {}
        for pid in [self.proc.pid, *descendants(self.proc.pid)]:
            line = command_line(pid)
            role = (
                "webhooks"
                if "webhook" in line
                else "valkey"
                if "valkey" in line or "redis" in line
                else "main"
            )
            try:
                found[role] = found.get(role, 0.0) + sample(pid).rss / 2**20
            except OSError:
                continue
        return found

    async def backlog(self) -> dict[str, int]:
        """Entries not yet handled per stream (lag + pending of its groups), and the server's
        ``used_memory`` in MB."""
        found: dict[str, int] = {}
        for stream in (*streams.CANONICAL_STREAMS, streams.WEBHOOKS):
            total = 0
            for group in await self.redis.xinfo_groups(stream):
                total += int(group.get("lag") or 0) + int(group.get("pending") or 0)
            found[stream.rsplit(":", 1)[1]] = total
        info = await self.redis.info("memory")
        found["server_mb"] = int(info["used_memory"]) // 2**20
        return found


def _spawn(log_path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen([str(LIAISON), "up"], stdout=log, stderr=log, env=env)


@asynccontextmanager
async def liaison_up(work: Path, receiver_port: int) -> AsyncIterator[Product]:
    """A fresh ``liaison up`` in ``work`` (embedded Valkey, SQLite ledger)."""
    port = free_port()
    (work / "liaison.yaml").write_text(yaml.safe_dump(config(receiver_port)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIAISON_")}
    env |= {
        "LIAISON_CONFIG": str(work / "liaison.yaml"),
        "LIAISON_DATA_DIR": str(work / "var"),
        "LIAISON_HTTP_ADDR": f"127.0.0.1:{port}",
        "LIAISON_INBOX_RETENTION": "10m",
        "LIAISON_DEDUPE_WINDOW": "10m",
        "LIAISON_LIVE_STREAMS_PER_PRINCIPAL": "4",
    }
    proc = _spawn(work / "liaison.log", env)
    base = f"http://127.0.0.1:{port}"
    redis: Redis | None = None
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(600):
                if proc.poll() is not None:
                    raise RuntimeError(f"liaison up exited with {proc.returncode}")
                try:
                    if (await client.get(f"{base}/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        redis = Redis(unix_socket_path=str(work / "var" / "redis" / "redis.sock"))
        yield Product(proc, base, redis)
    finally:
        if redis is not None:
            await redis.aclose()
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
