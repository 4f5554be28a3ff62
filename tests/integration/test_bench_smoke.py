"""The ledger benchmark still runs end to end (300 events); it asserts no speed."""

from __future__ import annotations

import pytest

from bench.smoke import smoke


@pytest.mark.timeout(120)
async def test_ledger_benchmark_runs_end_to_end() -> None:
    report = await smoke()
    assert report.figures
    assert all(rate > 0 for rate in report.raw.values())
