"""The two products of the peer benchmark, each started fresh and fed alerts the same way.

* **Alertmanager** (Debian's ``prometheus-alertmanager``): one route per receiver,
  each ``continue: true``, ``group_by: ['...']`` (one group per alert) and
  ``group_wait: 0s``, so every alert is one notification to each of the 4
  receivers as soon as it arrives; clustering off. Alerts go to ``POST /api/v2/alerts``.
* **Liaison**: ``liaison up`` (its webhook worker in its own process) on an embedded
  Valkey; an ``alert.raised`` of BLO-OYBEK reaches 4 units, each with one webhook
  (``allow_http``); alerts go to ``POST /v1/events`` as a CloudEvents batch.

Both post to the same receiver (:mod:`bench.support.peer_receiver`) at ``/r0`` … ``/r3``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
import yaml

from bench.support.procs import descendants
from services.core.auth import token_digest

LIAISON = Path(sys.executable).parent / "liaison"
ALERTMANAGER = "prometheus-alertmanager"
SECRET = "whsec_" + base64.b64encode(b"peer-bench-secret-0123456789abcd").decode()
TOKEN = "peer-bench-publisher-token"
UNITS = ("BLO-FOTEHOBOD", "IMT-GULISTAN", "IMT-TASHKENT", "NIAC-UZ")
"""Where routing sends an alert of BLO-OYBEK of the design's example: one receiver each."""


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Product(Protocol):
    """A running product: how to send it alerts, and which processes are its own."""

    name: str

    async def send(self, numbers: list[int]) -> None:
        """Hand it the alerts numbered ``numbers`` (one request)."""
        ...

    def pids(self) -> list[int]:
        """Its processes now (for CPU and memory)."""
        ...


@dataclass
class _Running:
    name: str
    proc: subprocess.Popen[bytes]
    client: httpx.AsyncClient
    url: str
    body: Any

    async def send(self, numbers: list[int]) -> None:
        content, headers = self.body(numbers)
        response = await self.client.post(self.url, content=content, headers=headers)
        if response.status_code >= 300:
            raise RuntimeError(
                f"{self.name} refused alerts: {response.status_code} {response.text[:200]}"
            )

    def pids(self) -> list[int]:
        return [self.proc.pid, *descendants(self.proc.pid)]


def ensure_alertmanager() -> str:
    """The Alertmanager binary; installed from Debian (apt-get) when absent and we are root."""
    found = shutil.which(ALERTMANAGER)
    if found:
        return found
    policy = subprocess.run(["apt-cache", "policy", ALERTMANAGER], capture_output=True, text=True)
    if "Candidate: (none)" in policy.stdout or not policy.stdout.strip():
        subprocess.run(["apt-get", "update", "-qq"], check=False)
    if os.geteuid() != 0:
        raise SystemExit(f"{ALERTMANAGER} is missing: sudo apt-get install {ALERTMANAGER}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "install", "-y", "-qq", ALERTMANAGER], check=True, env=env)
    found = shutil.which(ALERTMANAGER)
    if not found:
        raise SystemExit(f"{ALERTMANAGER} did not install")
    return found


def _am_config(receiver_port: int) -> dict[str, Any]:
    receivers = [f"r{k}" for k in range(len(UNITS))]
    return {
        "route": {
            "receiver": receivers[0],
            "group_by": ["..."],
            "group_wait": "0s",
            "group_interval": "5m",
            "repeat_interval": "24h",
            "routes": [{"receiver": r, "continue": True} for r in receivers],
        },
        "receivers": [
            {
                "name": r,
                "webhook_configs": [
                    {"url": f"http://127.0.0.1:{receiver_port}/{r}", "send_resolved": False}
                ],
            }
            for r in receivers
        ],
    }


def _am_body(numbers: list[int]) -> tuple[bytes, dict[str, str]]:
    now = datetime.now(UTC).isoformat()
    alerts = [
        {
            "labels": {"alertname": "bench", "id": f"bench-{n}", "severity": "urgent"},
            "annotations": {"summary": "KAMAZ truck suspected of carrying heroin"},
            "startsAt": now,
        }
        for n in numbers
    ]
    return json.dumps(alerts).encode(), {"content-type": "application/json"}


def _liaison_body(numbers: list[int]) -> tuple[bytes, dict[str, str]]:
    now = datetime.now(UTC).isoformat()
    events = [
        {
            "specversion": "1.0",
            "id": f"bench-{n}",
            "source": "/units/BLO-OYBEK",
            "type": "alert.raised",
            "time": now,
            "releasableto": "UZ,TJ",
            "data": {
                "severity": "urgent",
                "summary": "KAMAZ truck suspected of carrying heroin",
                "route": ["TJ", "UZ", "KZ"],
            },
        }
        for n in numbers
    ]
    headers = {
        "content-type": "application/cloudevents-batch+json",
        "authorization": f"Bearer {TOKEN}",
    }
    return json.dumps(events).encode(), headers


async def _wait_ready(url: str, proc: subprocess.Popen[bytes], what: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(600):
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited with {proc.returncode}")
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{what} not ready")


@asynccontextmanager
async def alertmanager(work: Path, receiver_port: int) -> AsyncIterator[Product]:
    """A fresh Alertmanager (own storage directory, no cluster)."""
    binary = ensure_alertmanager()
    port = free_port()
    config = work / "alertmanager.yml"
    config.write_text(yaml.safe_dump(_am_config(receiver_port)))
    args = [
        binary,
        f"--config.file={config}",
        f"--storage.path={work / 'am-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
        "--log.level=warn",
    ]
    proc = _spawn(args, work / "alertmanager.log")
    try:
        await _wait_ready(f"http://127.0.0.1:{port}/-/ready", proc, "alertmanager")
        url = f"http://127.0.0.1:{port}/api/v2/alerts"
        async with httpx.AsyncClient(timeout=60) as client:
            yield _Running("Alertmanager", proc, client, url, _am_body)
    finally:
        _stop(proc)


@asynccontextmanager
async def liaison(
    work: Path, receiver_port: int, settings: dict[str, str] | None = None
) -> AsyncIterator[Product]:
    """A fresh ``liaison up`` (embedded Valkey, SQLite ledger, its own data directory);
    ``settings``: more ``LIAISON_*`` variables (for experiments)."""
    port = free_port()
    config = {
        "principals": [
            {
                "name": "uz-customs",
                "role": "publisher",
                "token_sha256": token_digest(TOKEN),
                "units": ["BLO-OYBEK"],
            }
        ],
        "webhooks": [
            {
                "unit": unit,
                "url": f"http://127.0.0.1:{receiver_port}/r{k}",
                "secret": SECRET,
                "allow_http": True,
            }
            for k, unit in enumerate(UNITS)
        ],
    }
    (work / "liaison.yaml").write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIAISON_")}
    env |= {
        "LIAISON_CONFIG": str(work / "liaison.yaml"),
        "LIAISON_DATA_DIR": str(work / "var"),
        "LIAISON_HTTP_ADDR": f"127.0.0.1:{port}",
        **(settings or {}),
    }
    proc = _spawn([str(LIAISON), "up"], work / "liaison.log", env)
    try:
        await _wait_ready(f"http://127.0.0.1:{port}/readyz", proc, "liaison up")
        url = f"http://127.0.0.1:{port}/v1/events"
        async with httpx.AsyncClient(timeout=60) as client:
            yield _Running("Liaison", proc, client, url, _liaison_body)
    finally:
        _stop(proc)


def _spawn(
    args: list[str], log_path: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
