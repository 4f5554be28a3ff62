"""A tiny ledger benchmark run for CI: the whole path on 300 events, in a few seconds.

It checks that the benchmark still runs end to end (every event persisted,
the chain verifies); it asserts no speed. ``python -m bench.smoke``, or from
a test: ``asyncio.run(bench.smoke.smoke())`` / ``await smoke()``.
"""

from __future__ import annotations

import asyncio
import sys

from bench.ledger import run
from bench.support.report import Report, render

EVENTS = 300


async def smoke(events: int = EVENTS, *, postgres: bool = False) -> Report:
    """Run the benchmark on ``events`` events; raises if anything was lost or does not verify."""
    report = await run(events, postgres=postgres, repeat=1)
    missing = [name for name, rate in report.raw.items() if not rate > 0]
    if missing or not report.figures:
        raise RuntimeError(f"benchmark measured nothing for {missing or 'the product'}")
    return report


def main(argv: list[str] | None = None) -> int:
    """Print the tiny run's table (not written to ``bench/results``); ``--postgres`` too."""
    args = sys.argv[1:] if argv is None else argv
    sys.stdout.write(render(asyncio.run(smoke(postgres="--postgres" in args))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
