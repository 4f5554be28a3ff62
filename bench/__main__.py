"""``python -m bench [FIGURE] [OPTIONS]``: one entry point for every figure (bench/README.md).

FIGURE is ``pipeline`` (the default, ``make bench``: every part in one run, the table in
bench/results/latest.md), ``ledger``, ``ingest``, ``fanout``, ``console`` or ``smoke``; each
has its own module of that name. ``python -m bench FIGURE --help`` lists its options.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from pathlib import Path

from bench.pipeline import RESULTS, SIZES, run
from bench.pipeline_notes import render

FIGURES = ("ledger", "ingest", "signed", "fanout", "console", "smoke", "replicated")
"""The figures measured alone, each ``bench/<name>.py`` with its ``main(argv)``."""


def main(argv: list[str] | None = None) -> int:
    """Run the figure named first (the whole pipeline when none is)."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in FIGURES:
        figure = importlib.import_module(f"bench.{args[0]}")
        code: int = figure.main(args[1:])
        return code
    return pipeline(args[1:] if args[:1] == ["pipeline"] else args)


def pipeline(argv: list[str]) -> int:
    """The whole pipeline: run, print the table, write it to ``--out``."""
    parser = argparse.ArgumentParser(
        prog="python -m bench [pipeline]",
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
