"""The peer benchmark's table (``bench/results/peer-alertmanager.md``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bench.support.report import machine


@dataclass
class Phase:
    """One phase of one product's run."""

    name: str
    alerts: int
    deliveries: int = 0
    lost: int = 0
    duplicates: int = 0
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    """First send to last arrival."""
    cpu: float = 0.0
    """CPU seconds of the product's processes during the phase."""
    cpu_by: dict[str, float] = field(default_factory=dict)
    """The same by process (Liaison: main, webhooks, valkey)."""
    rss_mb: float = 0.0
    valid: int = 0
    invalid: int = 0
    connections: int = 0

    def pct(self, q: float) -> float:
        """Latency percentile in ms."""
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0

    @property
    def rate(self) -> float:
        """Deliveries per second over the phase."""
        return self.deliveries / self.seconds if self.seconds else 0.0


@dataclass
class Run:
    """One product, one fresh instance, all its phases."""

    product: str
    repetition: int
    phases: list[Phase] = field(default_factory=list)
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)


DASH, TIMES, ELLIPSIS = "\u2013", "\u00d7", "\u2026"

DIFFERENCES = """\
## What each does that the other does not

| | Alertmanager 0.25 | Liaison |
|---|---|---|
| a job survives a kill of the process | no: notifications in flight live in memory (its nflog records only what was sent) | yes: each delivery is a stream entry until it finished; a dead worker's jobs are taken over |
| signed deliveries | no (optional basic/bearer auth, TLS) | Standard Webhooks `v1` HMAC, `webhook-id` stable across retries |
| retries | exponential backoff within one `group_interval`, then the next flush | backoff with full jitter, `Retry-After` honoured, up to 10 attempts or 24 h; given-up deliveries recorded in the ledger |
| per-endpoint concurrency bound | no | yes (a slow endpoint holds only its own share) |
| grouping, inhibition, silences, HA gossip | yes | no (one delivery per alert and unit) |
| audit trail of deliveries | no | every delivery, outcome and failure in the signed ledger and the unit's inbox |
| routing | label matchers | the topology: neighbours, corridor, counterparts, handling codes, per-unit views |
"""


def _span(values: Sequence[float], fmt: str) -> str:
    low, high = min(values), max(values)
    return (
        fmt.format(low)
        if fmt.format(low) == fmt.format(high)
        else f"{fmt.format(low)}{DASH}{fmt.format(high)}"
    )


def _figures(runs: Sequence[Run]) -> list[tuple[str, Callable[[Sequence[Run]], str], str]]:
    def phase(name: str) -> Callable[[Run], Phase]:
        return lambda run: next(p for p in run.phases if p.name == name)

    def lat(name: str, q: float) -> Callable[[Sequence[Run]], str]:
        return lambda rs: _span([phase(name)(r).pct(q) for r in rs], "{:.1f}")

    def per_delivery(rs: Sequence[Run]) -> str:
        return _span(
            [
                1000 * sum(p.cpu for p in r.phases) / max(1, sum(p.deliveries for p in r.phases))
                for r in rs
            ],
            "{:.2f}",
        )

    def role_cpu(role: str) -> Callable[[Sequence[Run]], str]:
        def figure(rs: Sequence[Run]) -> str:
            if not rs or rs[0].product != "Liaison":
                return "\u2014"
            return _span(
                [
                    1000
                    * sum(p.cpu_by.get(role, 0.0) for p in r.phases)
                    / max(1, sum(p.deliveries for p in r.phases))
                    for r in rs
                ],
                "{:.2f}",
            )

        return figure

    rows: list[tuple[str, Callable[[Sequence[Run]], str], str]] = []
    for rate in ("50/s", "200/s"):
        rows.append((f"{rate}: latency p50 (ms)", lat(rate, 0.5), "low"))
        rows.append((f"{rate}: latency p99 (ms)", lat(rate, 0.99), "low"))
        rows.append((f"{rate}: latency max (ms)", lat(rate, 1.0), "low"))
    rows.append(
        (
            "peak (2,000 alerts at once): deliveries/s",
            lambda rs: _span([phase("peak")(r).rate for r in rs], "{:,.0f}"),
            "high",
        )
    )
    rows.append(("CPU per delivery, all phases (ms)", per_delivery, "low"))
    for role in ("main", "webhooks", "valkey"):
        rows.append((f"{ELLIPSIS} of which Liaison's {role} process (ms)", role_cpu(role), ""))
    rows.append(
        (
            "peak RSS of its processes (MB)",
            lambda rs: _span([max(p.rss_mb for p in r.phases) for r in rs], "{:.0f}"),
            "low",
        )
    )
    rows.append(
        (
            "deliveries: made / lost / duplicated",
            lambda rs: " · ".join(
                f"{sum(p.deliveries for p in r.phases):,} / {sum(p.lost for p in r.phases)}"
                f" / {sum(p.duplicates for p in r.phases)}"
                for r in rs
            ),
            "",
        )
    )
    rows.append(
        (
            "signatures valid / invalid",
            lambda rs: " · ".join(
                f"{sum(p.valid for p in r.phases):,} / {sum(p.invalid for p in r.phases)}"
                for r in rs
            ),
            "",
        )
    )
    return rows


def _ratio(am: str, lx: str, better: str) -> str:
    def mid(text: str) -> float:
        parts = [float(x.replace(",", "")) for x in text.split(DASH)]
        return sum(parts) / len(parts)

    if not better:
        return ""
    try:
        a, b = mid(am), mid(lx)
    except ValueError:
        return ""
    if a == 0 or b == 0:
        return ""
    return f"{b / a:.2f}{TIMES}"


PROFILE = (
    "Where Liaison's time goes — each alert time-stamped at every hop, CPU by process and by "
    "component, and why the goals are out of reach on this machine: "
    "[peer-profile.md](peer-profile.md)."
)


def render(runs: Sequence[Run], seconds: float) -> str:
    """The whole page: machine, method, table with ratios, per-run loads, differences."""
    am = [r for r in runs if r.product == "Alertmanager"]
    lx = [r for r in runs if r.product == "Liaison"]
    info = machine("embedded Valkey of each Liaison run")
    lines = [
        "# Webhook delivery beside Prometheus Alertmanager",
        "",
        "`make bench-peer` (`python -m bench.peer_alertmanager`). Same work for both: every "
        f"alert to 4 webhook receivers of one local receiver process; open-loop sender at 50 and "
        f"200 alerts/s for {seconds:g} s each, then 2,000 alerts at once; fresh instances, "
        f"{max(r.repetition for r in runs)} repetitions, alternating which product goes first. "
        "Ranges are over the repetitions; the ratio is Liaison / Alertmanager (of the middles).",
        "",
        f"- machine: {info['cores']}; {info['os']}; {info['python']}",
        f"- date: {info['date']}",
        "- load average at each run's start: "
        + "; ".join(f"{r.product} #{r.repetition}: {r.load[0]:.2f}" for r in runs),
        "",
        "| figure | Alertmanager | Liaison | ratio |",
        "|---|---:|---:|---:|",
    ]
    for name, figure, better in _figures(runs):
        a, b = figure(am), figure(lx)
        lines.append(f"| {name} | {a} | {b} | {_ratio(a, b, better)} |")
    lines += ["", PROFILE]
    lines += ["", "Per run (deliveries/s in the peak; CPU s per phase):", ""]
    for r in runs:
        parts = [
            f"{p.name}: p50 {p.pct(0.5):.1f} / p99 {p.pct(0.99):.1f} ms, "
            f"{p.rate:,.0f}/s, CPU {p.cpu:.2f} s ("
            + ", ".join(f"{k} {v:.2f}" for k, v in sorted(p.cpu_by.items()))
            + f"), {p.connections} connections"
            for p in r.phases
        ]
        lines.append(f"- {r.product} #{r.repetition}: " + "; ".join(parts))
    lines += ["", DIFFERENCES]
    return "\n".join(lines) + "\n"
