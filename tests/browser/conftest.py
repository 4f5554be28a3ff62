"""The console in a real browser: Debian's Chromium driven by Playwright, against a real
runtime serving HTTP on loopback.

Chromium comes from Debian (``apt-get install chromium``; ``make test`` installs it when
missing) and Playwright drives it through ``executable_path`` — never ``playwright install``.
Without it the tests skip on a developer's machine and fail in CI (``CI`` set).

Every page is opened in a context that aborts any request to another origin (and records
it), collects Content-Security-Policy violations and script errors, and saves a screenshot
to ``tests/artifacts/screenshots`` (``LIAISON_SCREENSHOTS`` overrides the folder).
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, BrowserContext, Page, Route, async_playwright

from services.bootstrap import Runtime
from services.core.auth import token_digest
from services.core.config import AckDeadlines, FileConfig, Principal, Role
from services.core.settings import Settings
from services.entrypoints.http import create_app
from services.entrypoints.serve import ApiServer
from tests.integration.conftest import TOKENS, principals_config

CHROMIUM = Path(os.environ.get("LIAISON_CHROMIUM", "/usr/bin/chromium"))
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
SCREENSHOTS = Path(
    os.environ.get("LIAISON_SCREENSHOTS", Path(__file__).parents[1] / "artifacts" / "screenshots")
)
FOTEHOBOD_TOKEN = "fotehobod-officer-token"
NIAC_TOKEN = "niac-officer-token"
ALL_TOKENS = {**TOKENS, "fotehobod": FOTEHOBOD_TOKEN, "niac": NIAC_TOKEN}

pytestmark = pytest.mark.browser


def browser_config(routine: timedelta = timedelta(hours=24)) -> FileConfig:
    """The integration suite's principals, an officer across the border and one at NIAC."""
    base = principals_config()
    extra = (
        Principal(name="fotehobod-duty", role=Role.OFFICER, token_sha256=token_digest(FOTEHOBOD_TOKEN),
                  unit="BLO-FOTEHOBOD"),
        Principal(name="niac-duty", role=Role.OFFICER, token_sha256=token_digest(NIAC_TOKEN),
                  unit="NIAC-UZ"),
    )  # fmt: skip
    return base.model_copy(
        update={
            "principals": (*base.principals, *extra),
            "ack_deadlines": AckDeadlines(routine=routine),
        }
    )


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, once per session."""
    if not os.path.exists(CHROMIUM):  # noqa: ASYNC240  (once per session, before anything runs)
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
        pytest.skip(f"BROWSER TIER SKIPPED — {CHROMIUM} is missing (apt-get install chromium)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class Console:
    """A running runtime with its HTTP server, and what its pages did in the browser."""

    runtime: Runtime
    base: str
    api: httpx.AsyncClient
    foreign_requests: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)
    script_errors: list[str] = field(default_factory=list)
    contexts: list[BrowserContext] = field(default_factory=list)

    async def context(self, *, locale: str = "en-GB", javascript: bool = True) -> BrowserContext:
        """A fresh browser profile that may talk to this server only."""
        context = await self._browser.new_context(
            locale=locale, java_script_enabled=javascript, viewport={"width": 1366, "height": 900},
            extra_http_headers={"Accept-Language": locale},
        )  # fmt: skip
        origin = urlsplit(self.base).netloc

        async def only_ours(route: Route) -> None:
            if urlsplit(route.request.url).netloc != origin:
                self.foreign_requests.append(route.request.url)
                await route.abort()
            else:
                await route.continue_()

        await context.route("**/*", only_ours)
        context.on("page", self._watch)
        self.contexts.append(context)  # closed at the end even when a test fails midway
        return context

    def _watch(self, page: Page) -> None:
        def console(message: object) -> None:
            text = getattr(message, "text", "")
            if "Content Security Policy" in text or text.startswith("Refused to"):
                self.csp_violations.append(text)

        page.on("console", console)
        page.on("pageerror", lambda error: self.script_errors.append(str(error)))

    async def sign_in(self, page: Page, who: str) -> None:
        """Through the sign-in form, as a person would."""
        await page.goto(f"{self.base}/console/login")
        await page.get_by_label(re.compile("Access token|Токен доступа|Kirish tokeni")).fill(
            ALL_TOKENS[who]
        )
        await page.get_by_role("button", name=re.compile("^(Sign in|Войти|Kirish)$")).click()
        await page.wait_for_load_state()

    @staticmethod
    async def live(page: Page) -> None:
        """Wait until the inbox is live: connected, and its list fetched once since (so no
        refresh replaces the rows under a click that follows)."""
        await page.locator("body[data-live=ready]").wait_for(state="attached")

    async def publish(self, event: dict[str, object], who: str = "customs") -> None:
        """Through the API, as an agency system would."""
        response = await self.api.post("/v1/events", json=event,
                                       headers={"Authorization": f"Bearer {ALL_TOKENS[who]}"})  # fmt: skip
        assert response.status_code == 202, response.text

    async def screenshot(self, page: Page, name: str) -> Path:
        """Save the whole page for people to look at (README, review)."""
        os.makedirs(SCREENSHOTS, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        return path

    def assert_clean(self) -> None:
        """Nothing left the origin, nothing broke the CSP, no script failed."""
        assert self.foreign_requests == []
        assert self.csp_violations == []
        assert self.script_errors == []

    _browser: Browser = field(init=False, repr=False)


async def assert_accessible(page: Page) -> None:
    """axe-core (carried by the wheel, injected with evaluate): no serious or critical finding."""
    results = await Axe().run(page)
    bad = [v for v in results.response["violations"] if v.get("impact") in ("serious", "critical")]
    described = [f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:5]}"
                 for v in bad]  # fmt: skip
    assert not described, f"{page.url}:\n" + "\n".join(described)


@pytest.fixture
async def console(redis_url: str, data_dir: Path, browser: Browser) -> AsyncIterator[Console]:
    """A whole runtime on the session's server, its API and console on a loopback port."""
    settings = Settings(data_dir=data_dir, redis_url=redis_url, database_url=None, config=None)
    async with Runtime(settings, browser_config(routine=timedelta(seconds=2))) as runtime:
        server = ApiServer(create_app(runtime.deps()), "127.0.0.1", 0)
        base = await server.start()
        try:
            async with httpx.AsyncClient(base_url=base, timeout=10) as api:
                found = Console(runtime, base, api)
                found._browser = browser
                try:
                    yield found
                finally:
                    # an open page holds a live stream, which the server would wait for
                    for context in found.contexts:
                        await context.close()
        finally:
            await server.stop()
