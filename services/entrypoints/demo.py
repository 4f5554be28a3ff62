"""``liaison demo``: the whole system on embedded defaults, driven over its HTTP API."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from schemas.events import CloudEvent
from services.bootstrap import Runtime
from services.console.app import console_url
from services.core.settings import Settings
from services.entrypoints import demo_scenario as scenario
from services.entrypoints.http import create_app
from services.entrypoints.serve import ApiServer, wait_for_signal
from services.notifier.handlers import facts_of
from services.notifier.routing import route_alert


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 20.0) -> None:
    """Wait for an asynchronous effect, with a deadline."""
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)
    del what


class DemoClient:
    """The demo's agencies, officer and auditor, each with its own token."""

    def __init__(self, http: httpx.AsyncClient, tokens: dict[str, str]) -> None:
        self.http, self.tokens = http, tokens

    def _auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    async def publish(self, who: str, event: dict[str, Any]) -> None:
        response = await self.http.post("/v1/events", json=event, headers=self._auth(who))
        if response.status_code != 202:
            raise RuntimeError(f"publish refused: {response.status_code} {response.text}")

    async def inbox(self, unit: str) -> list[dict[str, Any]]:
        response = await self.http.get(
            f"/v1/units/{unit}/alerts", headers=self._auth("audit-office")
        )
        response.raise_for_status()
        alerts: list[dict[str, Any]] = response.json()["alerts"]
        return alerts

    async def ledger(self, path: str) -> dict[str, Any]:
        response = await self.http.get(path, headers=self._auth("audit-office"))
        response.raise_for_status()
        doc: dict[str, Any] = response.json()
        return doc


DEMO_PORT = 8700
"""Where ``liaison demo --serve`` listens when the port is free (a free one otherwise)."""


async def run_demo(data_dir: Path, console: Console, *, serve: bool = False) -> bool:
    """Play the scenario; True when every step happened and the ledger verifies.

    With ``serve`` the system keeps running afterwards, with two more alerts waiting at
    IMT Gulistan, and the web console's address and sign-in tokens are printed; it stops
    on Ctrl-C (SIGINT) or SIGTERM."""
    tokens = scenario.demo_tokens()
    settings = Settings(data_dir=data_dir, redis_url=None, database_url=None, config=None)
    async with Runtime(settings, scenario.demo_config(tokens)) as runtime:
        port = DEMO_PORT if serve and _free("127.0.0.1", DEMO_PORT) else 0
        server = ApiServer(create_app(runtime.deps()), "127.0.0.1", port)
        base = await server.start()
        console.print(
            f"[bold]Liaison Exchange demo[/] — API at {base}, Redis at {runtime.redis_url}"
        )
        try:
            async with httpx.AsyncClient(base_url=base, timeout=10) as http:
                client = DemoClient(http, tokens)
                ok = await _play(client, runtime, console)
                if not serve:
                    console.print(
                        "Web console: [bold]liaison demo --serve[/] (or [bold]make demo[/] in a "
                        "terminal) keeps the demo running and prints where and how to sign in.",
                        highlight=False,
                    )
                    return ok
                for alert in scenario.waiting_alerts():
                    await client.publish("uz-customs", alert)
                _print_console(console, base, tokens)
                await wait_for_signal()
                return ok
        finally:
            await server.stop()


def _free(host: str, port: int) -> bool:
    """Whether nothing listens on ``host:port`` yet."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _print_console(console: Console, base: str, tokens: dict[str, str]) -> None:
    console.print(
        f"\n[bold]Web console[/]: {console_url(base)}\n"
        f"  duty officer of {scenario.SEIZING_UNIT} (gulistan-duty), access token: "
        f"{tokens['gulistan-duty']}\n"
        f"  auditor (audit-office), access token: {tokens['audit-office']}\n"
        "Two alerts wait for IMT Gulistan. Running until Ctrl-C; the tokens die with the demo.",
        highlight=False,
        soft_wrap=True,
    )


async def _play(client: DemoClient, runtime: Runtime, console: Console) -> bool:
    alert = scenario.alert_raised()
    await client.publish("uz-customs", alert)
    console.print(
        f"1. BLO-OYBEK raised urgent alert [cyan]{alert['id']}[/]: {alert['data']['summary']}"
    )
    units = sorted(u for u in runtime.topology.units if u != scenario.ALERT_ORIGIN)

    expected = route_alert(facts_of(CloudEvent.model_validate(alert)), runtime.topology)

    async def delivered() -> bool:
        entries = await client.ledger("/v1/ledger/events?type=alert.delivered&limit=1000")
        return len(entries["events"]) == len(expected) and all(
            [await _has(client, r.unit, alert["id"]) for r in expected]
        )

    await _until(delivered, "fan-out")
    ack = await client.http.post(
        f"/v1/units/{scenario.SEIZING_UNIT}/alerts/{alert['id']}/ack",
        json={"officer": "Duty officer, IMT Gulistan", "note": "Patrols on the A373 informed"},
        headers=client._auth("gulistan-duty"),
    )
    ack.raise_for_status()
    console.print(f"2. {scenario.SEIZING_UNIT} acknowledged at {ack.json()['acknowledged_at']}")
    seizure = scenario.seizure_reported(alert["id"])
    await client.publish("uz-mia", seizure)
    console.print("3. IMT-GULISTAN reported the seizure of 20 kg 32 g of heroin (TJ → UZ → KZ)")
    await client.publish("uz-customs", scenario.alert_closed(alert["id"], seizure["id"]))
    console.print("4. BLO-OYBEK closed the alert")

    async def settled() -> bool:
        closed = await client.ledger("/v1/ledger/events?type=alert.closed")
        acked = await client.ledger("/v1/ledger/events?type=alert.acknowledged")
        return bool(closed["events"]) and bool(acked["events"])

    await _until(settled, "ledger")
    await _until(lambda: _closed_everywhere(client, alert["id"]), "closure")
    await runtime.ledger.checkpoint_if_due(force=True)  # sign the scenario's last entry
    console.print(await _inbox_table(client, units, alert["id"]))
    return await _ledger_summary(client, console)


async def _has(client: DemoClient, unit: str, alert_id: str) -> bool:
    return any(a["alert_id"] == alert_id for a in await client.inbox(unit))


async def _closed_everywhere(client: DemoClient, alert_id: str) -> bool:
    entries = await client.ledger("/v1/ledger/events?type=alert.delivered&limit=1000")
    for entry in entries["events"]:
        inbox = await client.inbox(entry["event"]["data"]["recipient"])
        if not any(a["alert_id"] == alert_id and a["state"] == "closed" for a in inbox):
            return False
    return True


async def _inbox_table(client: DemoClient, units: list[str], alert_id: str) -> Table:
    table = Table(title="What each unit received")
    for column in ("unit", "reasons", "view", "persons", "acknowledged by", "state"):
        table.add_column(column)
    for unit in units:
        for item in await client.inbox(unit):
            if item["alert_id"] != alert_id:
                continue
            data = item["event"]["data"]
            persons = (
                ", ".join(p["name"] for p in data["persons"])
                if "persons" in data
                else f"{data.get('persons_count', 0)} withheld"
            )
            ack = item.get("acknowledgement") or {}
            by = item["acknowledged_by"] or "—"
            if ack.get("person"):
                by = f"{by} ({ack['person']})"
            table.add_row(
                unit, ", ".join(item["reasons"]), item["view"], persons, by, item["state"]
            )
    return table


def _detail(event: dict[str, Any]) -> str:
    data = event["data"]
    if event["type"] == "alert.delivered":
        return f"→ {data['recipient']} ({', '.join(data['reasons'])}; {data['view']})"
    if event["type"] == "alert.acknowledged":
        person = f" ({data['person']})" if data.get("person") else ""
        return f"{data['unit']} by {data.get('principal', '?')}{person}"
    if event["type"] == "seizure.reported":
        return ", ".join(f"{d['quantity']} {d['measure']} {d['substance']}" for d in data["drugs"])
    text = str(data.get("summary") or data.get("reason") or "")
    return text if len(text) <= 60 else text[:59] + "…"


async def _ledger_summary(client: DemoClient, console: Console) -> bool:
    page = await client.ledger("/v1/ledger/events?limit=1000")
    for entry in page["events"]:
        event = entry["event"]
        console.print(
            f"  ledger #{entry['seq']:>2} {entry['hash'][:12]}… {event['type']:<19} "
            f"{event['source']:<20} {_detail(event)}",
            highlight=False,
        )
    seizure = next(e["event"] for e in page["events"] if e["event"]["type"] == "seizure.reported")
    drug = seizure["data"]["drugs"][0]
    console.print(
        f"Seizure recorded as {drug['quantity']} {drug['measure']} of {drug['substance']}"
    )
    verdict = await client.ledger("/v1/ledger/verify")
    status = (
        "[green]OK[/]" if verdict["ok"] else f"[red]BROKEN at seq {verdict['first_bad_seq']}[/]"
    )
    console.print(
        f"Ledger: {verdict['count']} entries, {verdict['checkpoints']} signed checkpoints, "
        f"head {verdict['head'][:16]}…, chain {status}"
    )
    ok: bool = verdict["ok"]
    return ok
