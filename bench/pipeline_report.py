"""The whole-pipeline benchmark as Markdown: one table of product figures next to their
raw limits, then the scale curve, memory, where the CPU goes, and the detail."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from bench import e2e
from bench.ingest import VALIDATE
from bench.ledger import COMMIT_MAX, READ, XADD_CLIENT
from bench.support.fanout_raw import percentile
from bench.support.procs import MB
from bench.support.raw_sql import BATCH as SQL_BATCH
from bench.support.report import Figure, serial

__all__ = ["XADD_CLIENT", "chain", "staged"]

if TYPE_CHECKING:
    from bench.pipeline import Pipeline

TARGETS = {
    "e2e": 25_000.0,
    "e2e ratio": 0.40,
    "ingest": 15_000.0,
    "p99 ms": 20.0,
    "reads": 150_000.0,
    "rss MB": 250.0,
}
APPEND = "SQLite: SQL append + SHA-256 chain, {} per commit"
PROCESSES = ("ingest", "ledger", "valkey", "bench")
SERVICES = ("ingest", "ledger")
"""The product's Python processes here; the notifier and the ledger commands are measured too.
The bench process is the harness (its senders; the payloads of the ledger benchmark before)."""


def chain(raw: dict[str, float]) -> float:
    """The raw limit chain: every raw step of an event done in turn by one core, 1 / Σ(1/limit)."""
    return serial(raw[VALIDATE], raw[XADD_CLIENT], raw[READ], raw[APPEND.format(SQL_BATCH)])


def staged(raw: dict[str, float]) -> float:
    """Each process on its own core: the slower of ingest (validate then XADD) and the ledger
    (read ∥ append)."""
    return min(serial(raw[VALIDATE], raw[XADD_CLIENT]), raw[READ], raw[APPEND.format(COMMIT_MAX)])


def _mark(ok: bool) -> str:
    return "✓" if ok else "✗"


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _rate(name: str, rate: float, limit_name: str, limit: float, target: str = "") -> str:
    return _row(
        name, f"{rate:,.0f}/s", limit_name, f"{limit:,.0f}/s", f"{rate / limit:.2f}", target
    )


def _ms(values: list[float], q: float) -> float:
    return percentile(values, q) * 1000 if values else 0.0


def summary(result: Pipeline) -> list[str]:
    """The one table: each product figure, its raw limit, the ratio and the target."""
    raw, split, big = result.ledger.raw, result.split, result.largest
    assert split.ingest_alone
    assert split.ledger_alone
    assert big.e2e
    assert big.reads
    lines = [
        "| figure | measured | raw limit (same run) | limit | ratio | target |",
        "|---|---:|---|---:|---:|---|",
    ]
    ingest_limit = serial(raw[VALIDATE], raw[XADD_CLIENT])
    rate = split.ingest_alone.rate
    lines.append(
        _rate(
            f"HTTP batch ingest → stream ({split.events:,}, ledger frozen)",
            rate,
            "validate then XADD, serial",
            ingest_limit,
            f"≥ {TARGETS['ingest']:,.0f} {_mark(rate >= TARGETS['ingest'])}",
        )
    )
    overlapped = min(raw[READ], raw[APPEND.format(COMMIT_MAX)])
    lines.append(
        _rate(
            f"stream → ledger persisted, `liaison serve ledger` ({split.events:,}, ingest idle)",
            split.ledger_alone.rate,
            "XREADGROUP+XACK ∥ SQL append, overlapped",
            overlapped,
        )
    )
    for section in ("SQLite", "PostgreSQL"):
        for f in result.ledger.figures.get(section, [])[:1]:
            lines.append(
                _rate(
                    f"stream → ledger persisted, {section}, in-process ({result.ledger.events:,})",
                    f.rate,
                    f.limit_name,
                    f.limit,
                )
            )
    rate, limit = big.e2e.rate, chain(raw)
    ok = rate >= TARGETS["e2e"] and rate / limit >= TARGETS["e2e ratio"]
    lines.append(
        _rate(
            f"**ingest → ledger persisted**, processes, SQLite ({big.events:,})",
            rate,
            "raw limit chain (serial)",
            limit,
            f"≥ {TARGETS['e2e']:,.0f} and ≥ {TARGETS['e2e ratio']:.2f} {_mark(ok)}",
        )
    )
    lines.append(_rate("… same run", rate, "stages on their own cores (bound)", staged(raw)))
    lat, hop = result.fanout.latencies, result.fanout.hop
    p99 = _ms(lat, 0.99)
    lines.append(
        _row(
            "fan-out latency p50 / p99 / max at 200 alerts/s, ~5 recipients",
            f"{_ms(lat, 0.5):.2f} / {p99:.2f} / {_ms(lat, 1.0):.2f} ms",
            "two stream hops p50 / p99",
            f"{2 * _ms(hop, 0.5):.2f} / {2 * _ms(hop, 0.99):.2f} ms",
            "",
            f"p99 ≤ {TARGETS['p99 ms']:.0f} ms {_mark(p99 <= TARGETS['p99 ms'])}",
        )
    )
    r = big.reads
    rate = big.events / (r.replay + r.verify)
    lines.append(
        _rate(
            f"replay + verify ({big.events:,} entries): N / (t replay + t verify)",
            rate,
            "raw scans, same formula",
            big.events / (r.raw_lines + r.raw_rehash),
            f"≥ {TARGETS['reads']:,.0f} {_mark(rate >= TARGETS['reads'])}",
        )
    )
    services = {n: m for n, m in big.memory.items() if n in SERVICES}
    worst, name = max((after.rss, n) for n, (_, after) in services.items())
    peaks = [a.peak for _, a in services.values()] + [c.peak for c in r.commands.values()]
    top = max(*peaks, *(w.peak for w in result.notifier))
    lines.append(
        _row(
            f"RSS of the product's processes after {big.events:,} events",
            f"{worst / MB:.0f} MB ({name}); highest peak {top / MB:.0f} MB",
            "",
            "",
            "",
            f"≤ {TARGETS['rss MB']:.0f} MB {_mark(top / MB <= TARGETS['rss MB'])}",
        )
    )
    return lines


def scale(points: Iterable[e2e.Point]) -> list[str]:
    """Throughput and memory at each size."""
    lines = [
        "| events | ingest → ledger persisted | HTTP ingest accepted (ledger running) | "
        "RSS after, MB: ingest / ledger / bench | Valkey RSS after | Valkey stream / seen hash, "
        "B per event | AOF rewrites |",
        "|---:|---:|---:|---|---:|---|---:|",
    ]
    for p in points:
        assert p.e2e
        mb = " / ".join(f"{p.memory[n][1].rss / MB:.0f}" for n in ("ingest", "ledger", "bench"))
        lines.append(
            _row(
                f"{p.events:,}",
                f"{p.e2e.rate:,.0f}/s",
                f"{p.events / p.ingest_accepted:,.0f}/s",
                mb,
                f"{p.memory['valkey'][1].rss / MB:.0f} MB",
                f"{p.server['stream'] / p.events:.0f} / {p.server['seen'] / p.events:.0f}",
                p.server["aof_rewrites"],
            )
        )
    return lines


def memory(result: Pipeline) -> list[str]:
    """Each process: RSS when ready → after, and its peak, at each size; the other processes."""
    lines = ["| events | " + " | ".join(PROCESSES) + " |", "|---:|" + "---|" * len(PROCESSES)]
    for p in result.points:
        cells = [
            f"{b.rss / MB:.0f} → {a.rss / MB:.0f} (peak {a.peak / MB:.0f})"
            for b, a in (p.memory[n] for n in PROCESSES)
        ]
        lines.append(_row(f"{p.events:,}", *cells))
    lines.append("")
    for w in result.notifier:
        lines.append(
            f"- `liaison serve notifier` (fan-out run): {w.first.rss / MB:.0f} MB at first "
            f"sight → {w.last.rss / MB:.0f} MB at the end, peak {w.peak / MB:.0f} MB"
        )
    big = result.largest
    for name, c in big.reads.commands.items() if big.reads else ():
        lines.append(
            f"- `liaison ledger {name}` over {big.events:,} entries: {c.seconds:.1f} s "
            f"(process start included), peak {c.peak / MB:.0f} MB"
        )
    return lines


def cpu(result: Pipeline) -> list[str]:
    """CPU µs per event of each process in each timed phase, and the 2-core bound it implies."""
    lines = [
        "| phase | ingest | ledger | valkey | bench (senders) | total | 2 cores ÷ total | measured |",
        "|---|" + "---:|" * (len(PROCESSES) + 3),
    ]
    phases = [(f"end to end, {p.events:,}", p.e2e) for p in result.points]
    split = result.split
    phases += [
        (f"HTTP ingest alone, {split.events:,}", split.ingest_alone),
        (f"ledger alone, {split.events:,}", split.ledger_alone),
    ]
    for label, phase in phases:
        if phase is None:
            continue
        us = [phase.cpu[n] * 1e6 / phase.events for n in PROCESSES]
        total = sum(us)
        lines.append(
            _row(
                label,
                *(f"{u:.1f}" for u in us),
                f"{total:.1f}",
                # a phase too short for one clock tick of CPU (the smoke's) has no bound to show
                f"{2e6 / total:,.0f}/s" if total else "—",
                f"{phase.rate:,.0f}/s",
            )
        )
    return lines


def figures(section: str, items: list[Figure]) -> list[str]:
    """One section of the ledger benchmark's figures."""
    lines = [
        f"### {section}",
        "",
        "| figure | per second | raw limit | limit | ratio |",
        "|---|---:|---|---:|---:|",
    ]
    lines += [
        _row(f.name, f"{f.rate:,.0f}", f.limit_name, f"{f.limit:,.0f}", f"{f.ratio:.2f}")
        for f in items
    ]
    return [*lines, ""]
