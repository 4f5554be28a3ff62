"""The whole pipeline in one run: raw limits, the product, the scale curve, one table.

``python -m bench`` (``make bench``) measures, on embedded defaults and in this order:

1. the raw limits of this machine and the ledger on its own (:mod:`bench.ledger`:
   pipelined XADD, XREADGROUP+XACK, chained SQL append and scans on SQLite and,
   when a cluster can start, PostgreSQL; stream → ledger persisted in-process),
   plus pydantic validation of the canonical event (:func:`bench.ingest.validate_rate`);
2. the scale curve (:mod:`bench.e2e`): ``liaison serve api`` and ``liaison serve
   ledger`` as processes on one embedded Valkey, HTTP batch ingest → ledger persisted
   at 10k, 100k and 1M events, resident memory of every process before and after;
   at 100k the stages apart, at 1M replay + verify of what was persisted;
3. alert fan-out latency at 200 alerts/s (:mod:`bench.fanout`, ``liaison serve notifier``).

The table goes to ``bench/results/latest.md`` (:mod:`bench.pipeline_report`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import e2e, fanout, ledger
from bench.ingest import VALIDATE, validate_rate
from bench.support import pg
from bench.support.fanout_report import FanoutReport
from bench.support.payloads import build, out_of_gc
from bench.support.procs import Sampler, Watched
from bench.support.report import Report

RESULTS = Path(__file__).parent / "results" / "latest.md"
SIZES = (10_000, 100_000, 1_000_000)


@dataclass(slots=True)
class Pipeline:
    """Everything one run of the whole benchmark measured."""

    ledger: Report
    """Raw limits (pydantic validation included) and the in-process ledger figures."""
    points: list[e2e.Point]
    fanout: FanoutReport
    notifier: list[Watched] = field(default_factory=list)
    postgres: str = ""
    """The PostgreSQL server measured, or why none was."""
    seconds: float = 0.0
    """Wall time of the whole run."""

    @property
    def split(self) -> e2e.Point:
        """The point where the stages were also timed apart."""
        return next(p for p in self.points if p.ingest_alone is not None)

    @property
    def largest(self) -> e2e.Point:
        """The largest point (replayed and verified)."""
        return self.points[-1]


async def run(
    sizes: tuple[int, ...] = SIZES,
    *,
    postgres: bool = True,
    repeat: int = 3,
    ledger_events: int = 20_000,
    fanout_seconds: float = 20.0,
    burst: int = 4000,
) -> Pipeline:
    """Run every part once (raw limits best of ``repeat``); raises if anything was lost."""
    start = time.perf_counter()
    sizes = tuple(sorted(sizes))
    why_not = pg.missing() if postgres else "not asked for (--no-postgres)"
    report = await ledger.run(ledger_events, postgres=why_not is None, repeat=repeat)
    report.raw[VALIDATE] = _validate_limit(min(ledger_events, 10_000), repeat)
    split = 100_000 if 100_000 in sizes else sizes[-1]
    points = [await e2e.run_point(n, split=n == split, reads=n == sizes[-1]) for n in sizes]
    with Sampler({"notifier": "serve notifier"}) as sampler:
        fan = await fanout.run(fanout_seconds, burst)
    result = Pipeline(report, points, fan, list(sampler.seen.values()))
    result.postgres = report.machine.get("postgresql", f"not measured: {why_not}")
    result.seconds = time.perf_counter() - start
    return result


def _validate_limit(n: int, repeat: int) -> float:
    payloads = build(n)
    with out_of_gc():
        return max(validate_rate(payloads.wire) for _ in range(repeat))


async def smoke() -> Pipeline:
    """A tiny run for the test suite (a few hundred events); raises if anything was lost."""
    return await run(
        (200, 400), postgres=False, repeat=1, ledger_events=300, fanout_seconds=0.1, burst=20
    )
