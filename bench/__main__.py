"""``python -m bench`` (``make bench``): the whole-pipeline benchmark (:mod:`bench.pipeline`).

The parts still run alone: ``python -m bench.ledger``, ``bench.ingest``, ``bench.fanout``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from bench.pipeline import RESULTS, SIZES, run
from bench.pipeline_notes import render


def main(argv: list[str] | None = None) -> int:
    """Command line: run, print the table, write it to ``--out``."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=list(SIZES),
        help="events per scale point (default 10000 100000 1000000)",
    )
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--repeat", type=int, default=3, help="raw limits: best of (default 3)")
    parser.add_argument("--seconds", type=float, default=20.0, help="fan-out steady run")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"default {RESULTS}")
    parser.add_argument("--no-out", action="store_true", help="print only")
    args = parser.parse_args(argv)
    result = asyncio.run(
        run(
            tuple(args.sizes),
            postgres=not args.no_postgres,
            repeat=args.repeat,
            fanout_seconds=args.seconds,
        )
    )
    text = render(result)
    sys.stdout.write(text)
    if not args.no_out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".md.tmp")
        tmp.write_text(text)
        tmp.replace(args.out)
        print(f"\nwritten to {args.out} ({result.seconds:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
