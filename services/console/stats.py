"""Seizure statistics arranged for the page: totals by unit, substance and month, per measure.

Pure: the rows are :func:`services.ledger.audit.seizure_stats`'s (the same as ``liaison ledger
stats --json``); quantities of different measures (kg, l, units) are never added together.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

DIMENSIONS = ("unit", "substance", "month")


@dataclass(frozen=True, slots=True)
class Table:
    """One dimension's totals in one measure, largest first (months: in time order)."""

    dimension: str
    measure: str
    rows: list[tuple[str, float, int]]
    """(key, quantity, seizures)"""


@dataclass(frozen=True, slots=True)
class StatsView:
    """Everything the statistics page shows."""

    measures: list[str]
    tables: list[Table]
    seizures: int
    """Seizures counted (reports sharing a ``case`` once; a seizure of two substances once per
    substance)."""


def stats_view(rows: Sequence[dict[str, Any]]) -> StatsView:
    """Group the rows by each dimension, separately for each measure."""
    measures = sorted({str(r["measure"]) for r in rows}, key=lambda m: (m != "kg", m))
    tables = []
    for measure in measures:
        mine = [r for r in rows if r["measure"] == measure]
        for dimension in DIMENSIONS:
            totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
            for r in mine:
                total = totals[str(r[dimension])]
                total[0] += float(r["quantity"])
                total[1] += int(r["seizures"])
            grouped = [(k, round(q, 9), int(n)) for k, (q, n) in totals.items()]
            if dimension == "month":
                grouped.sort(key=lambda t: t[0])
            else:
                grouped.sort(key=lambda t: (-t[1], t[0]))
            tables.append(Table(dimension, measure, grouped))
    return StatsView(measures, tables, sum(int(r["seizures"]) for r in rows))
