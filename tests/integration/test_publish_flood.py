"""A publisher flooding ``POST /v1/events`` with bodies that are refused does not stall the others
(issue 13, item 5).

``liaison serve api`` runs as its own process; two other processes post refused bodies in a
loop while another publisher's small publishes are timed, before and during the flood. Its
latency may grow (the machine is shared), but within 3x. Each way a body is screened is flooded
with what costs it most (services/ingest/screening.py):

* 8 MiB bodies, screened whole in the worker processes: events for a unit the flooder may not
  publish for (403), and events whose every object holds hundreds of unknown keys (422, the
  costliest to validate); unfixed, each flood request held the event loop for 0.3-5 s;
* the same just under 2 MiB, screened on the event loop a slice at a time; screened there at
  once, each held the loop for 0.1-0.3 s;
* 16 KiB bodies, screened at once on the event loop, each event holding a list far over its
  bound (thousands of ``{}``): unfixed, every item was validated and reported, ~60 ms each.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.core.auth import token_digest
from services.core.redis_server import EmbeddedRedis, free_port
from services.ingest.screening import INLINE_MAX, SLICED_MAX
from tests import factories
from tests.integration.processes import ServiceProcesses, wait_for

VICTIM, FLOODER = "victim-token", "flooder-token"
SAMPLES = 40
FLOOD = """
import http.client, os, sys, pathlib
os.nice(19)  # the flooders stand for other machines: their own CPU is not the server's
host, port, token, body, counter = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
payload = pathlib.Path(body).read_bytes()
done = 0
while True:
    conn = http.client.HTTPConnection(host, port, timeout=60)
    conn.request("POST", "/v1/events", payload, {"Authorization": "Bearer " + token,
                 "Content-Type": "application/json"})
    status = conn.getresponse().status
    conn.close()
    done += 1
    pathlib.Path(counter + ".new").write_text(f"{done} {status}")
    os.replace(counter + ".new", counter)  # never read half-written
"""


def _foreign(events: int) -> list[dict[str, Any]]:
    """Alerts of ~6.7 KB for a unit that is not the flooder's (403)."""
    heavy = factories.alert(unit="BLO-DUSTLIK")
    heavy["data"]["persons"] = heavy["data"]["persons"] * 90
    return [{**heavy, "id": f"f-{i}"} for i in range(events)]


def _junk(events: int) -> list[dict[str, Any]]:
    """Alerts of ~8 KB, each with 600 unknown attributes (422 with 600 errors each)."""
    unknown = {f"k{k}": k for k in range(600)}
    return [{**factories.alert(unit="BLO-OYBEK"), **unknown} for _ in range(events)]


def _overlong() -> list[dict[str, Any]]:
    """One seizure of ~16 KB whose ``drugs`` are 3,900 ``{}`` (the bound is 100)."""
    seizure = factories.seizure(unit="BLO-OYBEK")
    seizure["data"]["drugs"] = [{}] * 3900
    return [seizure]


@dataclass(frozen=True)
class Flood:
    """What the two flooders post, each body's size range, and the statuses they get."""

    bodies: Callable[[], tuple[list[dict[str, Any]], ...]]
    sizes: tuple[float, float]
    statuses: set[str]


MiB = 2**20
FLOODS = {
    "8 MiB bodies, in the workers": Flood(
        lambda: (_foreign(1000), _junk(1000)), (6 * MiB, 8 * MiB), {"403", "422"}
    ),
    "2 MiB batches, in slices": Flood(
        lambda: (_foreign(300), _junk(260)), (1.5 * MiB, SLICED_MAX), {"403", "422"}
    ),
    "16 KiB bodies of overlong lists, at once": Flood(
        lambda: (_overlong(), _overlong()), (15_000, INLINE_MAX), {"422"}
    ),
}


def _bodies(directory: Path, flood: Flood) -> list[Path]:
    """The flood's two bodies, written to files for the flooding processes."""
    smallest, largest = flood.sizes
    paths = []
    for i, body in enumerate(flood.bodies()):
        text = json.dumps(body).encode()
        assert smallest < len(text) <= largest, len(text)
        (directory / f"body-{i}").write_bytes(text)
        paths.append(directory / f"body-{i}")
    return paths


@pytest.fixture
def ingest(tmp_path: Path) -> Iterator[tuple[str, ServiceProcesses]]:
    """``liaison serve api`` on a server of its own, with a victim and a flooder."""
    server = EmbeddedRedis(tmp_path / "redis")
    config = tmp_path / "liaison.yaml"
    config.write_text(
        "principals:\n"
        f"  - {{name: victim, role: publisher, token_sha256: {token_digest(VICTIM)}, "
        "units: [IMT-GULISTAN]}\n"
        f"  - {{name: flooder, role: publisher, token_sha256: {token_digest(FLOODER)}, "
        "units: [BLO-OYBEK]}\n",
        encoding="utf-8",
    )
    port = free_port()
    env = {
        "LIAISON_REDIS_URL": server.start(),
        "LIAISON_DATA_DIR": str(tmp_path / "var"),
        "LIAISON_CONFIG": str(config),
        "LIAISON_HTTP_ADDR": f"127.0.0.1:{port}",
    }
    processes = ServiceProcesses(tmp_path / "logs", env)
    try:
        processes.start("api")
        yield f"http://127.0.0.1:{port}", processes
    finally:
        processes.close()
        server.stop()


async def _latencies(client: httpx.AsyncClient) -> list[float]:
    """Seconds each of SAMPLES small publishes (one seizure) took, one after the other."""
    headers = {"Authorization": f"Bearer {VICTIM}"}
    taken = []
    for _ in range(SAMPLES):
        started = time.perf_counter()
        response = await client.post("/v1/events", json=factories.seizure(), headers=headers)
        taken.append(time.perf_counter() - started)
        assert response.status_code == 202, response.text
    return taken


def _flood(port: str, body: Path, counter: Path) -> subprocess.Popen[bytes]:
    """A process posting ``body`` in a loop, writing how many it sent and the last status."""
    command = [sys.executable, "-c", FLOOD, "127.0.0.1", port, FLOODER, str(body), str(counter)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("kind", list(FLOODS))
async def test_a_flood_of_refused_bodies_leaves_others_publishing(
    ingest: tuple[str, ServiceProcesses], tmp_path: Path, kind: str
) -> None:
    url, processes = ingest
    bodies = _bodies(tmp_path, FLOODS[kind])
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:

        async def up() -> bool:
            try:
                return (await client.get("/readyz")).status_code == 200
            except httpx.TransportError:
                return False

        await wait_for(up, "ingest ready", processes, timeout=60)
        await _latencies(client)  # warm up: connections, scripts
        rounds: list[str] = []
        for _ in range(ROUNDS):
            calm = await _latencies(client)
            loaded, statuses = await _under_the_flood(client, url, processes, bodies, tmp_path)
            assert statuses == FLOODS[kind].statuses
            figures, within = _compare(calm, loaded)
            rounds.append(figures)
            print(figures)
            if within:
                break
        else:
            pytest.fail(f"publishes slowed more than 3x under the flood, {ROUNDS} times: {rounds}")


ROUNDS = 3
"""Measurements, calm then flooded, until one is within the bound. The machine is shared: a
burst of other work during one flooded measurement can push its p90 past 3x; a body that holds
the event loop (unfixed, 60 ms to seconds per flood request) does so in every round."""


async def _under_the_flood(
    client: httpx.AsyncClient,
    url: str,
    processes: ServiceProcesses,
    bodies: list[Path],
    tmp_path: Path,
) -> tuple[list[float], set[str]]:
    """The victim's latencies while two processes post the flood's bodies; their statuses."""
    counters = [tmp_path / f"flood-{i}" for i in range(len(bodies))]
    for counter in counters:
        counter.unlink(missing_ok=True)
    port = url.rsplit(":", 1)[1]
    floods = [_flood(port, body, count) for body, count in zip(bodies, counters, strict=True)]
    try:
        # the flood is on once the server answered the first body of each kind
        await wait_for(lambda: all(c.exists() for c in counters), "flooding", processes, 120)
        try:
            async with asyncio.timeout(60):  # unfixed: each publish waited seconds
                loaded = await _latencies(client)
        except TimeoutError:
            pytest.fail(f"{SAMPLES} publishes took over 60 s under the flood")
        return loaded, {c.read_text().split()[1] for c in counters}
    finally:
        for flood in floods:
            flood.kill()
            flood.wait()


def _compare(calm: list[float], loaded: list[float]) -> tuple[str, bool]:
    """The figures, and whether the flooded p50 and p90 are within 3x of the calm ones."""
    calm_p50, loaded_p50 = statistics.median(calm), statistics.median(loaded)
    calm_p90, loaded_p90 = _p90(calm), _p90(loaded)
    figures = (
        f"p50 {calm_p50 * 1000:.1f} -> {loaded_p50 * 1000:.1f} ms, "
        f"p90 {calm_p90 * 1000:.1f} -> {loaded_p90 * 1000:.1f} ms"
    )
    floor = 0.010  # below 10 ms, scheduling noise on a shared machine is all there is
    within = loaded_p50 <= 3 * max(calm_p50, floor) and loaded_p90 <= 3 * max(calm_p90, floor)
    return figures, within


def _processes() -> dict[int, int]:
    """Every live process (not a zombie) and its parent."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        try:
            state, parent = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
        except (OSError, IndexError, ValueError):
            continue
        if entry.name.isdigit() and state != "Z":
            parents[int(entry.name)] = int(parent)
    return parents


def _below(pid: int) -> set[int]:
    """Every live process below ``pid`` (its children, theirs, ...)."""
    parents = _processes()
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


async def test_the_screening_workers_do_not_outlive_a_killed_ingest_process(
    ingest: tuple[str, ServiceProcesses],
) -> None:
    url, processes = ingest
    [service] = processes.started
    headers = {"Authorization": f"Bearer {FLOODER}"}
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:

        async def up() -> bool:
            try:
                return (await client.get("/readyz")).status_code == 200
            except httpx.TransportError:
                return False

        await wait_for(up, "ingest ready", processes, timeout=60)
        big = {**factories.seizure(unit="BLO-OYBEK"), "k": "x" * 20_000}  # an event over 16 KiB
        response = await client.post("/v1/events", json=big, headers=headers)
        assert response.status_code == 422  # screened in a worker process
    workers = _below(service.pid)
    assert len(workers) >= 3, workers  # the fork server, two workers (and a resource tracker)
    service.kill()  # SIGKILL, as the OOM killer would: no clean-up runs
    # unfixed, they waited for ever on queues they hold both ends of (~60 MB each, every kill)
    await wait_for(
        lambda: not workers & _processes().keys(), "the workers to exit", processes, timeout=30
    )
