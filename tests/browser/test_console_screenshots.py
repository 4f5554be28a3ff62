"""Every page of the console with a realistic day's traffic: axe finds nothing serious, the
CSP holds, nothing leaves the origin — and a screenshot of each for people to look at
(``make screenshots`` copies them into docs/screenshots, shown by docs/console.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from playwright.async_api import expect

from tests import factories
from tests.browser.conftest import ALL_TOKENS, Console, assert_accessible
from tests.integration.conftest import eventually

UNIT = "IMT-GULISTAN"


def _alert(severity: str, summary: str, **data: Any) -> dict[str, Any]:
    alert = factories.alert()
    alert["data"].update(severity=severity, summary=summary, **data)
    return alert


def _seizure(unit: str, months_ago: int, drugs: list[dict[str, Any]]) -> dict[str, Any]:
    seizure = factories.seizure(unit=unit)
    when = datetime.now(UTC) - timedelta(days=30 * months_ago)
    seizure["data"].update(occurred_at=when.isoformat(), drugs=drugs)
    return seizure


async def _a_day_of_traffic(console: Console) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    alerts = [
        _alert("routine", "Tramadol parcels sent through the Oybek post office"),
        _alert("urgent", "Two passengers of the Khujand–Tashkent bus with pills in their luggage"),
        _alert("urgent", "Grey Chevrolet Cobalt seen twice at the crossing at night",
               vehicles=[{"plate": "10 A 123 BC", "description": "grey Chevrolet Cobalt"}]),
        _alert("flash", "White KAMAZ with cotton bales, heading for the Kazakh border",
               vehicles=[{"plate": "01 TJ 000 AA", "description": "white KAMAZ truck, cotton bales"}],
               consignment="heroin hidden in cotton bales",
               window={"from": now.isoformat(), "until": (now + timedelta(hours=6)).isoformat()}),
    ]  # fmt: skip
    for alert in alerts:
        await console.publish(alert)

    async def delivered() -> bool:
        inbox = await console.api.get(f"/v1/units/{UNIT}/alerts",
                                      headers={"Authorization": f"Bearer {ALL_TOKENS['auditor']}"})  # fmt: skip
        return len(inbox.json()["alerts"]) == len(alerts)

    await eventually(delivered)
    acked = await console.api.post(
        f"/v1/units/{UNIT}/alerts/{alerts[2]['id']}/ack", json={"note": "patrol at the crossing"},
        headers={"Authorization": f"Bearer {ALL_TOKENS['gulistan']}"},
    )  # fmt: skip
    assert acked.status_code == 200
    seizures = [
        _seizure("IMT-GULISTAN", 0, [{"substance": "heroin", "quantity": 20032, "measure": "g"}]),
        _seizure("IMT-GULISTAN", 1, [{"substance": "hashish", "quantity": 3.2, "measure": "kg"}]),
        _seizure("IMT-GULISTAN", 2, [{"substance": "opium", "quantity": 7.5, "measure": "kg"}]),
    ]
    for seizure in seizures:
        await console.publish(seizure, who="mia")
    oybek = _seizure("BLO-OYBEK", 1, [{"substance": "heroin", "quantity": 4.1, "measure": "kg"},
                                      {"substance": "tramadol", "quantity": 1200, "measure": "pieces"}])  # fmt: skip
    ayritom = _seizure(
        "BLO-AYRITOM", 0, [{"substance": "heroin", "quantity": 11.4, "measure": "kg"}]
    )
    for seizure in (oybek, ayritom):
        await console.publish(seizure)
    return alerts


async def test_every_page_is_accessible_and_pictured(console: Console) -> None:
    alerts = await _a_day_of_traffic(console)
    context = await console.context()
    page = await context.new_page()
    await page.goto(f"{console.base}/console/login")
    await assert_accessible(page)
    await console.screenshot(page, "login")
    await console.sign_in(page, "gulistan")

    await expect(page.locator("tr.row")).to_have_count(3)
    await expect(page.locator("tr.row.is-overdue")).to_have_count(1, timeout=15_000)
    await assert_accessible(page)
    await console.screenshot(page, "inbox")
    await page.get_by_role("link", name="Escalated").click()
    await expect(page.locator("tr.row")).to_have_count(1, timeout=15_000)
    await assert_accessible(page)
    await page.get_by_role("link", name="All").click()
    await assert_accessible(page)
    await console.screenshot(page, "inbox-all")

    flash = alerts[-1]
    await page.goto(f"{console.base}/console/units/{UNIT}/alerts/{flash['id']}")

    async def mapped() -> bool:
        await page.reload()
        return await page.locator("tr.step-alert-delivered").count() >= 4

    await eventually(mapped)
    await assert_accessible(page)
    await console.screenshot(page, "alert")
    await context.close()

    # the coordinator's notices of the delivery nobody acknowledged in time
    context = await console.context()
    page = await context.new_page()
    await console.sign_in(page, "niac")
    await page.goto(f"{console.base}/console/units/NIAC-UZ?show=notices")
    await expect(page.locator("table.notices tbody tr").first).to_be_visible(timeout=15_000)
    await assert_accessible(page)
    await console.screenshot(page, "notices")
    await context.close()

    context = await console.context()
    page = await context.new_page()
    await console.sign_in(page, "auditor")

    async def recorded() -> bool:
        return await console.runtime.ledger.count() >= 30

    await eventually(recorded)
    await page.goto(f"{console.base}/console/ledger")
    await page.get_by_role("button", name="Verify chain").click()
    await expect(page.get_by_text("Chain OK")).to_be_visible()
    await assert_accessible(page)
    await console.screenshot(page, "ledger")
    await page.goto(f"{console.base}/console/ledger/entries/4")
    await assert_accessible(page)
    await console.screenshot(page, "entry")
    await page.goto(f"{console.base}/console/alerts/{flash['id']}")
    await assert_accessible(page)
    await console.screenshot(page, "trail")
    await page.goto(f"{console.base}/console/stats")
    await expect(page.locator("svg.chart").first).to_be_visible()
    await assert_accessible(page)
    await console.screenshot(page, "stats")
    await page.goto(f"{console.base}/console/nowhere")
    await assert_accessible(page)
    console.assert_clean()
    await context.close()
