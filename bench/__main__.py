"""``python -m bench`` (``make bench``): the whole-pipeline benchmark (:mod:`bench.pipeline`).

The parts still run alone: ``python -m bench.ledger``, ``bench.ingest``, ``bench.fanout``.
"""

from bench.pipeline import main

if __name__ == "__main__":
    raise SystemExit(main())
