"""Console latency: from ``POST /v1/events`` to the row visible in an officer's open console.

One process runs the whole product (ingest, ledger, notifier, the HTTP API with its console)
on an embedded Valkey and a SQLite ledger, as ``liaison up`` does. Debian's Chromium
(Playwright, ``executable_path``; never a browser download) signs in as the duty officer of
IMT-GULISTAN and keeps the inbox open. Alerts from BLO-OYBEK (Gulistan is a neighbour) are
POSTed one at a time at ``--rate`` per second; for each:

* **console**: POST sent → its row is in the page's DOM. A ``MutationObserver`` (added with
  ``evaluate``, not through the page, so the CSP is untouched) stamps each row when it first
  appears, on the same wall clock as this process. The path: ingest → stream → notifier →
  inbox + feed → the console's doorbell (SSE) → the page re-fetches its list → swap.
* **API fan-out**, same run, same alerts: POST sent → the delivery's frame on
  ``GET /v1/units/IMT-GULISTAN/alerts/stream`` (the API's own live path, read by httpx).

p50 / p99 / max of each. ``python -m bench.console [--alerts 200] [--rate 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from playwright.async_api import async_playwright

from bench.support.report import machine
from services.bootstrap import Runtime
from services.console.render import row_id
from services.core.auth import token_digest
from services.core.config import FileConfig, Principal, Role
from services.core.settings import Settings
from services.entrypoints.http import create_app
from services.entrypoints.serve import ApiServer

RESULTS = Path(__file__).parent / "results" / "console-latest.md"
CHROMIUM = os.environ.get("LIAISON_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
UNIT, ORIGIN = "IMT-GULISTAN", "BLO-OYBEK"
TOKENS = {"publisher": "bench-publisher", "officer": "bench-officer"}
_OBSERVE = """() => {
  window.__seen = {};
  const stamp = () => {
    for (const row of document.querySelectorAll('tr.row[id]')) {
      if (!(row.id in window.__seen)) window.__seen[row.id] = performance.timeOrigin + performance.now();
    }
  };
  new MutationObserver(stamp).observe(document.body, {childList: true, subtree: true});
  stamp();
}"""


@dataclass
class ConsoleReport:
    """Latencies in seconds, per alert, of the console and of the API's own stream."""

    alerts: int
    rate: float
    console: list[float] = field(default_factory=list)
    api: list[float] = field(default_factory=list)
    missing: int = 0
    missing_console: int = 0
    """Of ``missing``: rows that never appeared in the page (the rest: frames not on the API's
    stream)."""


def _config() -> FileConfig:
    return FileConfig(
        principals=(
            Principal(
                name="bench-agency",
                role=Role.PUBLISHER,
                token_sha256=token_digest(TOKENS["publisher"]),
                units=(ORIGIN,),
            ),
            Principal(
                name="bench-officer",
                role=Role.OFFICER,
                token_sha256=token_digest(TOKENS["officer"]),
                unit=UNIT,
            ),
        )
    )


def _alert(n: int) -> dict[str, object]:
    return {
        "specversion": "1.0",
        "id": f"bench-console-{n}-{time.time_ns()}",
        "source": f"/units/{ORIGIN}",
        "type": "alert.raised",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "releasableto": "UZ,TJ",
        "data": {"severity": "urgent", "summary": f"Bench truck {n}", "route": ["TJ", "UZ", "KZ"]},
    }


@contextlib.asynccontextmanager
async def _product() -> AsyncIterator[str]:
    with tempfile.TemporaryDirectory(prefix="liaison-console-bench-") as tmp:
        settings = Settings(data_dir=Path(tmp), redis_url=None, database_url=None, config=None)
        async with Runtime(settings, _config()) as runtime:
            server = ApiServer(create_app(runtime.deps()), "127.0.0.1", 0)
            base = await server.start()
            try:
                yield base
            finally:
                await server.stop()


async def _api_stream(base: str, seen: dict[str, float], ready: asyncio.Event) -> None:
    """The API's SSE stream: when each alert's delivery frame arrives (reconnects, resuming)."""
    last: str | None = None
    headers = {"Authorization": f"Bearer {TOKENS['officer']}"}
    async with httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(10, read=None)) as client:
        while True:
            sent = {**headers, **({"Last-Event-ID": last} if last else {})}
            try:
                async with client.stream(
                    "GET", f"/v1/units/{UNIT}/alerts/stream", headers=sent
                ) as reply:
                    ready.set()
                    async for line in reply.aiter_lines():
                        if line.startswith("id: "):
                            last = line[4:]
                        elif line.startswith("data: "):
                            doc = json.loads(line[6:])
                            if doc.get("kind") == "delivered":
                                seen.setdefault(doc["alert_id"], time.time())
            except (httpx.HTTPError, json.JSONDecodeError):
                await asyncio.sleep(0.05)


async def run(alerts: int = 200, rate: float = 5.0) -> ConsoleReport:
    """Publish ``alerts`` alerts at ``rate``/s into an open console; measure both paths."""
    report = ConsoleReport(alerts, rate)
    async with _product() as base, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            page = await browser.new_page()
            await page.goto(f"{base}/console/login")
            await page.get_by_label("Access token").fill(TOKENS["officer"])
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url(f"**/console/units/{UNIT}")
            await page.goto(f"{base}/console/units/{UNIT}?show=all")
            await page.locator("body[data-live=ready]").wait_for(state="attached")
            await page.evaluate(_OBSERVE)
            api_seen: dict[str, float] = {}
            ready = asyncio.Event()
            listener = asyncio.create_task(_api_stream(base, api_seen, ready))
            await ready.wait()
            sent: dict[str, float] = {}
            headers = {"Authorization": f"Bearer {TOKENS['publisher']}"}
            async with httpx.AsyncClient(base_url=base, timeout=10) as client:
                start = time.monotonic()
                for n in range(alerts):
                    await asyncio.sleep(max(start + n / rate - time.monotonic(), 0))
                    alert = _alert(n)
                    sent[str(alert["id"])] = time.time()
                    response = await client.post("/v1/events", json=alert, headers=headers)
                    response.raise_for_status()
            deadline = time.monotonic() + 60  # generous: a loaded machine is slow, not wrong
            rows: dict[str, float] = {}
            while time.monotonic() < deadline:
                rows = await page.evaluate("() => window.__seen")
                if len(api_seen) >= alerts and all(row_id(a, ORIGIN) in rows for a in sent):
                    break
                await asyncio.sleep(0.2)
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
        finally:
            await browser.close()
    for alert_id, at in sent.items():
        if row_id(alert_id, ORIGIN) in rows and alert_id in api_seen:
            report.console.append(rows[row_id(alert_id, ORIGIN)] / 1000 - at)
            report.api.append(api_seen[alert_id] - at)
        else:
            report.missing += 1
            report.missing_console += row_id(alert_id, ORIGIN) not in rows
    return report


def _quantiles(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return p50, p99, ordered[-1]


def render(report: ConsoleReport) -> str:
    """The report as Markdown."""
    info = machine("embedded Valkey")
    lines = [
        "# Console latency: POST /v1/events → row visible in an open console",
        "",
        f"{info['date']}, {info['cores']}; {report.alerts} alerts at {report.rate:g}/s, one Chromium page "
        f"(Debian's, headless) on the inbox of {UNIT}, every service in one process.",
        "",
        "| path | p50 | p99 | max |",
        "|---|---:|---:|---:|",
    ]
    for name, values in (
        ("console: row in the page's DOM", report.console),
        ("API: delivery frame on /v1/units/…/alerts/stream", report.api),
    ):
        if values:
            p50, p99, top = _quantiles(values)
            lines.append(
                f"| {name} | {p50 * 1000:.0f} ms | {p99 * 1000:.0f} ms | {top * 1000:.0f} ms |"
            )
    if report.console and report.api:
        extra = [c - a for c, a in zip(report.console, report.api, strict=True)]
        p50, p99, _ = _quantiles(extra)
        lines += [
            "",
            f"The console adds {p50 * 1000:.0f} ms at p50 ({p99 * 1000:.0f} ms at p99) to "
            "the API's own stream: the doorbell frame, the list's re-fetch and render, the swap.",
        ]
    if report.missing:
        lines += ["", f"**{report.missing} alerts never appeared.**"]
    return "\n".join(lines) + "\n"


async def smoke(alerts: int = 6) -> ConsoleReport:
    """A tiny run for the test suite: raises if a row never appears; asserts no timing."""
    report = await run(alerts, rate=10.0)
    if report.missing or len(report.console) != alerts:
        raise RuntimeError(
            f"{report.missing} of {alerts} alerts missing: {report.missing_console} never appeared "
            f"in the console, {report.missing - report.missing_console} not on the API's stream"
        )
    return report


def main(argv: list[str] | None = None) -> int:
    """Command line: run, print the report, write it to ``--out``."""
    parser = argparse.ArgumentParser(prog="python -m bench console", description=__doc__)
    parser.add_argument("--alerts", type=int, default=200, help="alerts (default 200)")
    parser.add_argument("--rate", type=float, default=5.0, help="alerts per second (default 5)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"default {RESULTS}")
    parser.add_argument("--no-out", action="store_true", help="print only")
    args = parser.parse_args(argv)
    text = render(asyncio.run(run(args.alerts, args.rate)))
    sys.stdout.write(text)
    if not args.no_out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"\nwritten to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
