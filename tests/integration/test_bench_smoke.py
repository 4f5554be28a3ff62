"""The benchmarks still run end to end on a few hundred events or alerts; no speed asserted."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bench import fanout, ingest, peer_alertmanager, pipeline, pipeline_report, replicated, signed
from bench.e2e import Phase, Point
from bench.pipeline_notes import render
from bench.smoke import smoke


@pytest.mark.timeout(120)
async def test_ledger_benchmark_runs_end_to_end() -> None:
    report = await smoke()
    assert report.figures
    assert all(rate > 0 for rate in report.raw.values())


@pytest.mark.timeout(120)
async def test_ingest_benchmark_runs_end_to_end() -> None:
    # raises unless the stream holds every event accepted
    report = await ingest.run(600, senders=2)
    [figure, *_] = report.figures["Ingest"]
    assert figure.rate > 0
    assert figure.limit > 0


@pytest.mark.timeout(120)
async def test_replicated_benchmark_runs_end_to_end() -> None:
    # each mode waits until the ledger holds every event published
    results = await replicated.run(1000, senders=2)
    assert set(results) == {"standard", "replicated"}
    assert all(row["ledger persisted/s"] > 0 for row in results.values())


async def test_signed_ingest_benchmark_runs_both_phases() -> None:
    text = await signed.run(300, senders=2)  # raises unless the stream holds all 600 events
    assert "| unsigned |" in text
    assert "| signed, verified |" in text


@pytest.mark.timeout(120)
async def test_fanout_benchmark_runs_end_to_end() -> None:
    report = await fanout.smoke()  # raises unless every inbox holds every alert once
    assert report.alerts == 20
    assert report.recipients == 100
    assert report.peak_deliveries == 100
    assert report.duplicates == 0


@pytest.mark.timeout(120)
async def test_peer_benchmark_runs_liaison_end_to_end() -> None:
    # `liaison up` with its webhook worker process, four units with a webhook each
    run = await peer_alertmanager.smoke(alerts=20)
    [phase] = run.phases
    assert (phase.deliveries, phase.lost, phase.duplicates) == (80, 0, 0)
    assert (phase.valid, phase.invalid) == (80, 0)
    assert set(phase.cpu_by) == {"main", "webhooks", "valkey"}


@pytest.mark.timeout(180)
async def test_whole_pipeline_benchmark_runs_end_to_end() -> None:
    # raises unless the stream and the ledger hold every event accepted, and the chain verifies
    result = await pipeline.smoke()
    assert [p.events for p in result.points] == [200, 400]
    assert all(p.e2e and p.e2e.rate > 0 for p in result.points)
    assert result.largest.reads is not None
    assert result.fanout.duplicates == 0
    assert "## Product figures next to the raw limits" in render(result)


def test_a_phase_too_short_for_a_clock_tick_of_cpu_is_reported() -> None:
    """On a loaded machine the smoke's ledger-alone phase can end before any process is charged
    one tick of CPU (10 ms): the report shows no bound instead of dividing by zero (it failed
    a loaded `make test` with ZeroDivisionError)."""
    idle = Phase(200, 0.01, dict.fromkeys(pipeline_report.PROCESSES, 0.0))
    point = Point(200, e2e=idle, ingest_alone=idle, ledger_alone=idle)
    result = SimpleNamespace(points=[point], split=point)
    rows = pipeline_report.cpu(result)  # type: ignore[arg-type]
    assert rows[-1] == "| ledger alone, 200 | 0.0 | 0.0 | 0.0 | 0.0 | 0.0 | — | 20,000/s |"
