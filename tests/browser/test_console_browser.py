"""The console as people use it, in Chromium: an officer at Gulistan, an officer across the
border at Fotehobod, the coordinator, an auditor; in English, Russian and Uzbek."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.async_api import expect

from tests import factories
from tests.browser.conftest import ALL_TOKENS, Console, assert_accessible
from tests.integration.conftest import eventually

UNIT = "IMT-GULISTAN"
PERSON, DOCUMENT = "Example Driver", "P-0000"


def flash_alert(
    summary: str = "White KAMAZ, cotton bales, heading for the Kazakh border",
) -> dict[str, Any]:
    now = datetime.now(UTC)
    alert = factories.alert()
    alert["data"].update(
        severity="flash", summary=summary,
        vehicles=[{"plate": "01 TJ 000 AA", "description": "white KAMAZ truck, cotton bales"}],
        window={"from": now.isoformat(), "until": (now + timedelta(hours=6)).isoformat()},
    )  # fmt: skip
    return alert


async def _deliveries(console: Console, unit: str) -> list[dict[str, Any]]:
    response = await console.api.get(
        f"/v1/units/{unit}/alerts", headers={"Authorization": f"Bearer {ALL_TOKENS['auditor']}"}
    )
    alerts: list[dict[str, Any]] = response.json()["alerts"]
    return alerts


async def test_an_alert_appears_live_and_is_acknowledged_in_one_click(console: Console) -> None:
    context = await console.context()
    page = await context.new_page()
    await console.sign_in(page, "gulistan")
    assert page.url.endswith(f"/console/units/{UNIT}")
    await expect(page.locator("#live-status.on")).to_be_visible()
    await expect(page.get_by_text("Nothing waits for acknowledgement.")).to_be_visible()

    alert = flash_alert()
    await console.publish(alert)  # through the API; the page is not reloaded
    row = page.locator("tr.row", has_text="White KAMAZ")
    await expect(row).to_be_visible(timeout=10_000)
    await expect(row.locator(".sev-flash")).to_have_text("Flash")
    await expect(page).to_have_title(re.compile(r"^\(1\) IMT-GULISTAN"))
    await assert_accessible(page)

    await row.get_by_label("Note (optional)").fill("Patrols on the A373 informed")
    await row.get_by_role("button", name="Acknowledge").click()
    await expect(page.get_by_text("Nothing waits for acknowledgement.")).to_be_visible()
    await expect(page).not_to_have_title(re.compile(r"^\("))

    async def recorded() -> bool:
        [delivery] = await _deliveries(console, UNIT)
        return delivery["acknowledged_by"] == "gulistan-duty"

    await eventually(recorded)
    await page.get_by_role("link", name=re.compile("^Acknowledged")).click()
    await expect(
        page.locator("tr.row", has_text="White KAMAZ").get_by_text("Acknowledged")
    ).to_be_visible()
    assert "show=acknowledged" in page.url  # the tab is in the URL
    console.assert_clean()
    await context.close()


async def test_a_colleague_s_acknowledgement_arrives_live(console: Console) -> None:
    context = await console.context()
    page = await context.new_page()
    await console.sign_in(page, "gulistan")
    alert = flash_alert("Second truck")
    await console.publish(alert)
    row = page.locator("tr.row", has_text="Second truck")
    await expect(row).to_be_visible(timeout=10_000)
    acked = await console.api.post(
        f"/v1/units/{UNIT}/alerts/{alert['id']}/ack", json={"note": "on it"},
        headers={"Authorization": f"Bearer {ALL_TOKENS['gulistan']}"},
    )  # fmt: skip
    assert acked.status_code == 200
    await expect(row).to_be_hidden(timeout=10_000)  # left the Open tab by itself
    console.assert_clean()
    await context.close()


async def test_across_the_border_no_identity_is_ever_shown(console: Console) -> None:
    alert = flash_alert()  # releasable UZ,TJ; persons not released abroad
    await console.publish(alert)
    context = await console.context()
    page = await context.new_page()
    await console.sign_in(page, "fotehobod")
    await console.live(page)
    row = page.locator("tr.row", has_text="White KAMAZ")
    await expect(row).to_be_visible(timeout=10_000)
    await expect(row.get_by_text("1 person withheld")).to_be_visible()
    await row.get_by_role("link", name=re.compile("White KAMAZ")).click()
    await expect(page.get_by_role("heading", name="History")).to_be_visible()
    await expect(page.get_by_text("1 person withheld").first).to_be_visible()

    async def delivered_everywhere() -> bool:
        await page.reload()
        return await page.locator("tr.step-alert-delivered").count() >= 3

    await eventually(delivered_everywhere)
    for shown in (await page.content(), await page.inner_text("body")):
        assert PERSON not in shown
        assert DOCUMENT not in shown
    await assert_accessible(page)
    # another unit's pages: 403, and nothing of them
    for path in (
        f"/console/units/{UNIT}",
        f"/console/units/{UNIT}/alerts/{alert['id']}",
        "/console/ledger",
    ):
        response = await page.goto(f"{console.base}{path}")
        assert response is not None
        assert response.status == 403
        assert PERSON not in await page.content()
    await expect(page.get_by_role("heading", name="You may not open this page")).to_be_visible()
    console.assert_clean()
    await context.close()


async def test_the_full_view_names_persons_and_maps_the_route(console: Console) -> None:
    alert = flash_alert()
    await console.publish(alert)
    context = await console.context()
    page = await context.new_page()
    await console.sign_in(page, "gulistan")
    await console.live(page)
    await page.locator("tr.row", has_text="White KAMAZ").get_by_role("link").click()
    await expect(page.get_by_text(PERSON)).to_be_visible()

    async def delivered_everywhere() -> bool:
        await page.reload()
        return await page.locator("tr.step-alert-delivered").count() >= 4

    await eventually(delivered_everywhere)
    svg = page.locator("svg.map")
    await expect(svg).to_be_visible()
    await expect(svg.locator("circle.origin")).to_have_count(1)
    await expect(svg.locator("circle.you")).to_have_count(1)
    assert await svg.locator("line.corridor").count() >= 1
    await expect(page.get_by_text("Schematic, boundaries not authoritative.")).to_be_visible()
    await assert_accessible(page)
    await console.screenshot(page, "alert")
    console.assert_clean()
    await context.close()


async def test_an_auditor_verifies_the_chain_and_reads_the_statistics(console: Console) -> None:
    alert = flash_alert()
    await console.publish(alert)
    for grams in (20032, 4500):
        await console.publish(factories.seizure(grams=grams, subject=alert["id"]), who="mia")
    context = await console.context()
    page = await context.new_page()
    await console.sign_in(page, "auditor")
    assert page.url.endswith("/console/ledger")

    async def recorded() -> bool:
        return await console.runtime.ledger.count() >= 7

    await eventually(recorded)
    await page.get_by_role("button", name="Verify chain").click()
    await expect(page.get_by_text("Chain OK")).to_be_visible()
    await expect(page.locator(".verdict.good")).to_contain_text(re.compile(r"\b\d+\b"))
    await assert_accessible(page)
    await page.get_by_label("Type").select_option("seizure.reported")
    await page.get_by_role("button", name="Filter").click()
    assert "type=seizure.reported" in page.url
    await expect(page.locator("table.ledger tbody tr")).to_have_count(2)
    await page.locator("table.ledger tbody tr").first.get_by_role("link").first.click()
    await expect(page.get_by_role("heading", name="Stored text")).to_be_visible()
    await assert_accessible(page)

    await page.goto(f"{console.base}/console/stats")
    chart = page.locator("svg.chart").first
    await expect(chart).to_be_visible()
    await expect(chart.locator("text.chart-value")).to_have_text(["24.532"])
    await expect(page.locator("table.numbers").first).to_contain_text("IMT-GULISTAN")
    await assert_accessible(page)

    await page.goto(f"{console.base}/console/alerts/{alert['id']}")
    await expect(page.get_by_text("Seizure reported by IMT-GULISTAN").first).to_be_visible()
    async with page.expect_download() as download:
        await page.get_by_role("link", name="CSV").click()
    assert (await download.value).suggested_filename == "trail.csv"
    await assert_accessible(page)
    console.assert_clean()
    await context.close()


@pytest.mark.parametrize(
    ("locale", "button", "sign_in"),
    [("ru", "Подтвердить", "Войти"), ("uz", "Tasdiqlash", "Kirish")],
)
async def test_russian_and_uzbek(console: Console, locale: str, button: str, sign_in: str) -> None:
    await console.publish(flash_alert())
    context = await console.context(locale=locale)
    page = await context.new_page()
    await page.goto(f"{console.base}/console/login")
    assert await page.get_attribute("html", "lang") == locale  # from Accept-Language
    await expect(page.get_by_role("button", name=sign_in, exact=True)).to_be_visible()
    await console.sign_in(page, "gulistan")
    await expect(page.get_by_role("button", name=button).first).to_be_visible(timeout=10_000)
    await assert_accessible(page)
    await console.screenshot(page, f"inbox-{locale}")
    # the switcher overrides the browser's language, and the session remembers it
    await page.get_by_role("button", name="English").click()
    assert await page.get_attribute("html", "lang") == "en"
    await page.goto(f"{console.base}/console/units/{UNIT}")
    assert await page.get_attribute("html", "lang") == "en"
    await expect(page.get_by_role("button", name="Acknowledge").first).to_be_visible()
    console.assert_clean()
    await context.close()


async def test_forged_and_foreign_forms_are_refused(console: Console) -> None:
    alert = flash_alert()
    await console.publish(alert)
    context = await console.context()
    page = await context.new_page()
    await console.sign_in(page, "gulistan")
    await console.live(page)
    row = page.locator("tr.row", has_text="White KAMAZ")
    await expect(row).to_be_visible(timeout=10_000)
    # a stale or forged anti-forgery token: refused, nothing recorded; in place (htmx)…
    # (forged and sent in one step: a live refresh of the list would bring a fresh form)
    forge = "form => { form.querySelector('[name=csrf_token]').value = 'forged'; form.%s(); }"
    await row.locator("form.ack").evaluate(forge % "requestSubmit")
    await expect(page.locator("#problem")).to_contain_text("refused this action")
    # …and as a plain form: the 403 page
    async with page.expect_navigation():
        await page.locator("form.ack").first.evaluate(forge % "submit")
    await expect(page.get_by_role("heading", name="You may not open this page")).to_be_visible()
    # a page of another site posting to the console: 403 as well
    evil = "http://localhost:9/evil"
    await context.unroute("**/*")
    await page.route(evil, lambda route: route.fulfill(content_type="text/html", body=(
        f'<form method="post" action="{console.base}/console/units/{UNIT}/acknowledge">'
        f'<input name="alert_id" value="{alert["id"]}"><button>go</button></form>')))  # fmt: skip
    await page.goto(evil)
    async with page.expect_navigation():
        await page.get_by_role("button", name="go").click()
    assert "You may not open this page" in await page.content()
    [delivery] = await _deliveries(console, UNIT)
    assert delivery["acknowledged_at"] is None
    assert console.csp_violations == []
    await context.close()


async def test_it_works_without_javascript(console: Console) -> None:
    await console.publish(flash_alert())
    context = await console.context(javascript=False)
    page = await context.new_page()
    await console.sign_in(page, "gulistan")

    async def arrived() -> bool:
        await page.reload()
        return await page.locator("tr.row").count() == 1

    await eventually(arrived)
    await page.get_by_role("button", name="Acknowledge").click()
    await expect(page.get_by_role("status").filter(has_text="Acknowledged:")).to_be_visible()
    [delivery] = await _deliveries(console, UNIT)
    assert delivery["acknowledged_by"] == "gulistan-duty"
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_text("You have signed out.")).to_be_visible()
    response = await page.goto(f"{console.base}/console/units/{UNIT}")
    assert response is not None
    assert "/console/login" in page.url  # the session ended on the server
    console.assert_clean()
    await context.close()
