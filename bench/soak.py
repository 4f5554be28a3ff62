"""A day of traffic, compressed (``make soak DURATION=1h``; not a test).

``liaison up`` (embedded Valkey, SQLite ledger, its webhook worker) under a steady, modest
mix for ``--duration``, open-loop (sends on a clock, never waiting for an answer first):

* seizures (``seizure.reported``) and alerts (``alert.raised``) from two publishers; an
  alert reaches 3 to 6 units (the BLOs and IMTs chosen as sources route so), a fifth of them
  flash; a third are closed again a minute or two later (``alert.closed``);
* one officer per unit holds the unit's live stream (SSE): the arrival of a delivery there
  is its fan-out; the officer acknowledges 80 % of deliveries (half of the flash ones, so the
  rest escalate after the 45 s flash deadline) a few seconds later;
* webhooks of three units to a receiver that fails 20 % of deliveries and is slow for 5 %;
* readers: a unit's inbox every 2 s, the ledger's tail (auditor) and an officer's console
  page every 10 s.

Every minute: publish, fan-out and acknowledgement latency (p50 / p99), the backlog of each
stream (group lag + pending), the server's ``used_memory`` and every process's resident
memory. Writes ``bench/results/soak.json`` (the rows), ``soak.md`` and ``soak.png``.
``python -m bench.soak --duration 1h [--alerts 2 --seizures 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import re
import tempfile
import time
from collections.abc import Coroutine, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.support import soak_product as sp
from bench.support.soak_report import Minute, Window, write_results

RESULTS = Path(__file__).parent / "results"
SAMPLE_EVERY = 10.0
SOURCES = {  # source unit -> publisher
    unit: name for name, units in sp.PUBLISHERS.items() for unit in units
}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Soak:
    """The load, its clocks and what it measured in the current minute."""

    def __init__(self, product: sp.Product, alerts: float, seizures: float) -> None:
        self.product = product
        self.alerts, self.seizures = alerts, seizures
        self.window = Window()
        self.random = random.Random(21)
        self.sent: dict[str, tuple[float, str]] = {}  # alert id -> (sent at, severity)
        self.counter = itertools.count()
        self.seen_errors: set[str] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.client = httpx.AsyncClient(
            base_url=product.base, timeout=60, limits=httpx.Limits(max_connections=200)
        )

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` as a task the run keeps (and cancels at its end)."""
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def failed(self, what: str, status: object, expected: int, text: str) -> None:
        """Count an answer other than ``expected``; the first of each kind is printed."""
        if status == expected:
            return
        self.window.errors += 1
        key = f"{what} {status}"
        if key not in self.seen_errors:
            self.seen_errors.add(key)
            print(f"first {key}: {text[:300]}", flush=True)

    async def publish(self, publisher: str, event: Mapping[str, object]) -> None:
        headers = {
            "authorization": f"Bearer {sp.token(publisher)}",
            "content-type": "application/cloudevents+json",
        }
        start = time.monotonic()
        try:
            response = await self.client.post("/v1/events", json=event, headers=headers)
            status = response.status_code
            self.failed(f"publish {event['type']}", status, 202, response.text)
        except httpx.HTTPError as exc:
            self.failed(f"publish {event['type']}", type(exc).__name__, 202, "")
        self.window.publish.append(time.monotonic() - start)

    def alert(self) -> None:
        source = self.random.choice(list(SOURCES))
        n = next(self.counter)
        alert_id = f"SOAK-{source}-{n}"
        severity = "flash" if self.random.random() < 0.2 else "urgent"
        event = {
            "specversion": "1.0",
            "id": alert_id,
            "source": f"/units/{source}",
            "type": "alert.raised",
            "time": _now(),
            "releasableto": "UZ,TJ,KG,AF" if n % 2 else "UZ",
            "data": {
                "severity": severity,
                "summary": f"Truck {n} suspected of carrying heroin",
                "route": ["TJ", "UZ", "KZ"],
            },
        }
        self.sent[alert_id] = (time.monotonic(), severity)
        self.spawn(self.publish(SOURCES[source], event))
        if self.random.random() < 1 / 3:
            self.spawn(self.close_later(source, alert_id, self.random.uniform(60, 120)))

    async def close_later(self, source: str, alert_id: str, delay: float) -> None:
        await asyncio.sleep(delay)
        event = {
            "specversion": "1.0",
            "id": f"{alert_id}-C",
            "source": f"/units/{source}",
            "type": "alert.closed",
            "subject": alert_id,
            "time": _now(),
            "data": {"reason": "Searched at the crossing: nothing found"},
        }
        await self.publish(SOURCES[source], event)

    def seizure(self) -> None:
        source = self.random.choice(list(SOURCES))
        n = next(self.counter)
        event = {
            "specversion": "1.0",
            "id": f"SOAK-SZ-{n}",
            "source": f"/units/{source}",
            "type": "seizure.reported",
            "time": _now(),
            "data": {
                "occurred_at": _now(),
                "location": {"unit": source},
                "drugs": [
                    {
                        "substance": "heroin",
                        "quantity": round(self.random.uniform(0.1, 30), 3),
                        "measure": "kg",
                    }
                ],
                "detained": self.random.randint(0, 3),
            },
        }
        self.spawn(self.publish(SOURCES[source], event))

    async def send(self, deadline: float) -> None:
        """The open-loop sender: alerts and seizures at their rates until ``deadline``."""
        start, alerts, seizures = time.monotonic(), 0, 0
        while (now := time.monotonic()) < deadline:
            while alerts < (now - start) * self.alerts:
                self.alert()
                alerts += 1
            while seizures < (now - start) * self.seizures:
                self.seizure()
                seizures += 1
            await asyncio.sleep(0.02)

    async def live(self, unit: str) -> None:
        """The unit's officer screen: fan-out latency of each delivery; acknowledge most."""
        headers = {"authorization": f"Bearer {sp.token(sp.officer(unit))}"}
        last: str | None = None
        frame = re.compile(r"^id: (\S+)\nevent: (\w+)\ndata: (.*)$", re.S)
        while True:
            sent = {**headers, **({"Last-Event-ID": last} if last else {})}
            try:
                url = f"/v1/units/{unit}/alerts/stream"
                timeout = httpx.Timeout(10, read=None)
                async with self.client.stream("GET", url, headers=sent, timeout=timeout) as r:
                    buffer = ""
                    async for chunk in r.aiter_text():
                        buffer += chunk
                        while "\n\n" in buffer:
                            block, buffer = buffer.split("\n\n", 1)
                            if match := frame.match(block):
                                last = match[1]
                                if match[2] == "delivered":
                                    self.delivered(unit, json.loads(match[3])["alert_id"])
            except httpx.HTTPError:
                await asyncio.sleep(1)

    def delivered(self, unit: str, alert_id: str) -> None:
        if alert_id not in self.sent:
            return
        sent_at, severity = self.sent[alert_id]
        self.window.fanout.append(time.monotonic() - sent_at)
        if self.random.random() < (0.5 if severity == "flash" else 0.8):
            self.spawn(self.ack(unit, alert_id, self.random.uniform(1, 20)))

    async def ack(self, unit: str, alert_id: str, delay: float) -> None:
        await asyncio.sleep(delay)
        headers = {"authorization": f"Bearer {sp.token(sp.officer(unit))}"}
        start = time.monotonic()
        try:
            url = f"/v1/units/{unit}/alerts/{alert_id}/ack"
            response = await self.client.post(url, json={}, headers=headers)
            self.failed("ack", response.status_code, 200, response.text)
        except httpx.HTTPError as exc:
            self.failed("ack", type(exc).__name__, 200, "")
        self.window.ack.append(time.monotonic() - start)

    async def readers(self, deadline: float) -> None:
        """Inboxes every 2 s, the ledger's tail and a console page every 10 s."""
        auditor = {"authorization": f"Bearer {sp.AUDITOR}"}
        after, tick = 0, 0
        console = await self.console_session()
        while time.monotonic() < deadline:
            unit = self.random.choice(sp.UNITS)
            headers = {"authorization": f"Bearer {sp.token(sp.officer(unit))}"}
            await self.read(f"/v1/units/{unit}/alerts", headers)
            if tick % 5 == 0:
                body = await self.read(f"/v1/ledger/events?after={after}&limit=1000", auditor)
                if isinstance(body, dict) and body.get("events"):
                    after = max(int(e["seq"]) for e in body["events"])
            if tick % 10 == 0:
                await self.read("/console/units/IMT-GULISTAN", {}, console)
            tick += 2
            await asyncio.sleep(2)

    async def console_session(self) -> httpx.AsyncClient:
        client = httpx.AsyncClient(base_url=self.product.base, timeout=60)
        page = await client.get("/console/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        form = {
            "csrf_token": csrf[1] if csrf else "",
            "token": sp.token(sp.officer("IMT-GULISTAN")),
        }
        await client.post("/console/login", data=form, headers={"origin": self.product.base})
        return client

    async def read(
        self, url: str, headers: dict[str, str], client: httpx.AsyncClient | None = None
    ) -> object:
        start = time.monotonic()
        try:
            response = await (client or self.client).get(url, headers=headers)
            ok = response.status_code == 200
            self.failed(f"GET {url.split('?')[0]}", response.status_code, 200, response.text)
        except httpx.HTTPError as exc:
            ok = False
            self.failed(f"GET {url.split('?')[0]}", type(exc).__name__, 200, "")
        self.window.read.append(time.monotonic() - start)
        return response.json() if ok and "json" in response.headers["content-type"] else None


async def run(seconds: float, alerts: float, seizures: float, out: Path) -> list[Minute]:
    """Run the soak for ``seconds``; returns the minutes (and writes them as they come)."""
    receiver = sp.FlakyReceiver()
    port = await receiver.start()
    minutes: list[Minute] = []
    with tempfile.TemporaryDirectory(prefix="liaison-soak-") as tmp:
        async with sp.liaison_up(Path(tmp), port) as product:
            soak = Soak(product, alerts, seizures)
            for unit in sp.UNITS:
                soak.spawn(soak.live(unit))
            start = time.monotonic()
            deadline = start + seconds
            soak.spawn(soak.send(deadline))
            soak.spawn(soak.readers(deadline))
            memory: dict[str, float] = {}
            backlog: dict[str, int] = {}
            next_minute = start + 60
            while next_minute <= deadline + 1:
                await asyncio.sleep(SAMPLE_EVERY)
                for role, mb in product.memory().items():
                    memory[role] = max(memory.get(role, 0.0), mb)
                for key, value in (await product.backlog()).items():
                    backlog[key] = max(backlog.get(key, 0), value)
                if time.monotonic() >= next_minute:
                    window, soak.window = soak.window, Window()
                    hooks = (receiver.ok, receiver.failed, receiver.slow)
                    elapsed = (time.monotonic() - start) / 60
                    minutes.append(Minute.of(elapsed, window, memory, backlog, hooks))
                    print(minutes[-1].line(), flush=True)
                    write_results(minutes, out, final=False)
                    memory, backlog = {}, {}
                    next_minute += 60
            for task in list(soak.tasks):
                task.cancel()
            await soak.client.aclose()
    await receiver.stop()
    return minutes


def _duration(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    return float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.soak``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", default="3m", help="how long: 90s, 3m, 1h")
    parser.add_argument("--alerts", type=float, default=2.0, help="alerts per second")
    parser.add_argument("--seizures", type=float, default=3.0, help="seizures per second")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where soak.{md,json,png} go")
    args = parser.parse_args(argv)
    seconds = _duration(args.duration)
    minutes = asyncio.run(run(seconds, args.alerts, args.seizures, args.out))
    write_results(minutes, args.out, final=True, load=os.getloadavg())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
