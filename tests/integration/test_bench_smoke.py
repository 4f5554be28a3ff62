"""The benchmarks still run end to end on a few hundred events; they assert no speed."""

from __future__ import annotations

import pytest

import bench.ingest
from bench.smoke import smoke


@pytest.mark.timeout(120)
async def test_ledger_benchmark_runs_end_to_end() -> None:
    report = await smoke()
    assert report.figures
    assert all(rate > 0 for rate in report.raw.values())


@pytest.mark.timeout(120)
async def test_ingest_benchmark_runs_end_to_end() -> None:
    report = await bench.ingest.run(
        600, senders=2
    )  # raises unless the stream holds every event accepted
    [figure, *_] = report.figures["Ingest"]
    assert figure.rate > 0
    assert figure.limit > 0
