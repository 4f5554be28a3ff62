"""The console latency benchmark still runs end to end on a few alerts; no speed asserted."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser

from bench import console as console_latency


@pytest.mark.timeout(180)
async def test_console_latency_benchmark_runs_end_to_end(browser: Browser) -> None:
    del browser  # only its fixture: Chromium is there (or the test skips outside CI)
    report = await console_latency.smoke()  # raises unless every alert's row appeared
    assert len(report.console) == len(report.api) == report.alerts
    assert "row visible in an open console" in console_latency.render(report)
