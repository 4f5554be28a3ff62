"""The benchmarks still run end to end (ledger: 300 events; fan-out: 40 alerts); no speed asserted."""

from __future__ import annotations

import pytest

from bench import fanout
from bench.smoke import smoke


@pytest.mark.timeout(120)
async def test_ledger_benchmark_runs_end_to_end() -> None:
    report = await smoke()
    assert report.figures
    assert all(rate > 0 for rate in report.raw.values())


@pytest.mark.timeout(120)
async def test_fanout_benchmark_runs_end_to_end() -> None:
    report = await fanout.smoke()  # raises unless every inbox holds every alert once
    assert report.alerts == 20
    assert report.recipients == 100
    assert report.peak_deliveries == 100
    assert report.duplicates == 0
