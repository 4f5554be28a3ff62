"""The fan-out benchmark's figures next to the raw limits of the same run, as Markdown."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.support.fanout_raw import percentile

TARGET_P99_MS = 20.0
TARGET_PEAK = 10_000.0

NOTES = [
    "Latency: from the moment `RedisPublisher.publish` returned (the alert is in the stream) "
    "until the watcher read the last recipient's `delivered` entry on its feed stream "
    "(`XREAD BLOCK` over every unit's feed, own connection, in the publishing process). The "
    "feed entry is appended by the same server-side script as the inbox write, so the watcher "
    "sees the inbox written, late by one server push (an upper bound).",
    "The path has two stream hops (publish → notifier's XREADGROUP; feed XADD → watcher), "
    "hence the raw floor is about twice the one-hop latency plus the inbox script.",
    "Steady: open loop (alerts are sent on schedule whatever the latency); a 100-alert "
    "warm-up is not counted. Peak: the notifier is frozen (SIGSTOP) while the burst is "
    "published, then let go (SIGCONT); deliveries / seconds until the last one is seen.",
    "The notifier is `liaison serve notifier` (services/bootstrap.py's Runtime, as in "
    "`liaison up`, without ingest and ledger) in its own process; the publisher and the watcher "
    "share this process. Everything on the same cores as the server.",
    "Peak is bounded by CPU, not by the server's write rate (ratio to pipelined HSET ≈ 0.1-0.15): "
    "per delivery the notifier renders and encodes the entry and the `alert.delivered` receipt "
    "(the next batch while the server runs the previous one's scripts); the server runs ~8 "
    "commands in scripts (inbox, order, recipients, deadline, feed; receipt's dedupe check, "
    "XADD, index). Burst CPU above one core means the two worked at the same time.",
]


@dataclass
class FanoutReport:
    """Everything one run measured (seconds, or per second)."""

    machine: dict[str, str]
    alerts: int = 0
    recipients: int = 0
    latencies: list[float] = field(default_factory=list)
    peak_deliveries: int = 0
    peak_seconds: float = 0.0
    hop: list[float] = field(default_factory=list)
    hset_per_s: float = 0.0
    cpu_ms_per_alert: float = 0.0
    peak_cpu: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    """CPU time over wall time during the burst (1.0 = one core): notifier, server, bench."""
    duplicates: int = 0
    dead_letters: int = 0

    @property
    def peak_per_s(self) -> float:
        """Deliveries written per second in the burst."""
        return self.peak_deliveries / self.peak_seconds if self.peak_seconds else 0.0


def _ms(values: list[float], q: float) -> float:
    return percentile(values, q) * 1000 if values else 0.0


def _mark(ok: bool) -> str:
    return "✓" if ok else "✗"


def render(report: FanoutReport) -> str:
    """The report as Markdown."""
    lat, hop = report.latencies, report.hop
    p99 = _ms(lat, 0.99)
    lines = [
        f"# Fan-out benchmark — {report.alerts:,} alerts at a steady rate, "
        f"{report.recipients / max(report.alerts, 1):.1f} recipients each",
        "",
    ]
    lines += [f"- **{key}**: {value}" for key, value in report.machine.items()]
    lines += ["", "## Raw limits (same machine, same run)", ""]
    lines += ["| raw limit | p50 | p99 | max / rate |", "|---|---:|---:|---:|"]
    lines.append(
        f"| one stream hop: XADD → blocked XREADGROUP has it | {_ms(hop, 0.5):.2f} ms "
        f"| {_ms(hop, 0.99):.2f} ms | {_ms(hop, 1.0):.2f} ms |"
    )
    lines.append(
        f"| HSET, pipelined 500 per round trip (1.4 kB values) | | | {report.hset_per_s:,.0f} /s |"
    )
    lines += ["", "## Fan-out", "", "| figure | measured | raw limit | ratio | target |"]
    lines += ["|---|---:|---:|---:|---|"]
    floor = 2 * _ms(hop, 0.5)
    lines.append(
        f"| latency p50 | {_ms(lat, 0.5):.2f} ms | 2 hops p50 = {floor:.2f} ms "
        f"| {_ms(lat, 0.5) / floor if floor else 0:.1f}x | |"
    )
    lines.append(
        f"| latency p99 | {p99:.2f} ms | 2 hops p99 = {2 * _ms(hop, 0.99):.2f} ms | | "
        f"≤ {TARGET_P99_MS:.0f} ms {_mark(p99 <= TARGET_P99_MS)} |"
    )
    lines.append(f"| latency max | {_ms(lat, 1.0):.2f} ms | | | |")
    peak = report.peak_per_s
    lines.append(
        f"| peak deliveries/s ({report.peak_deliveries:,} in {report.peak_seconds:.2f} s)"
        f" | {peak:,.0f} | HSET {report.hset_per_s:,.0f}/s | {peak / report.hset_per_s:.2f}"
        f" | ≥ {TARGET_PEAK:,.0f} {_mark(peak >= TARGET_PEAK)} |"
    )
    lines.append(f"| notifier CPU per alert (steady) | {report.cpu_ms_per_alert:.2f} ms | | | |")
    shares = " / ".join(f"{share:.0%}" for share in report.peak_cpu)
    lines.append(f"| CPU in the burst: notifier / server / bench (of one core) | {shares} | | | |")
    lines.append(
        f"| duplicate deliveries seen / dead letters | {report.duplicates} / "
        f"{report.dead_letters} | | | 0 / 0 |"
    )
    lines += ["", "## Method", ""] + [f"- {note}" for note in NOTES]
    return "\n".join(lines) + "\n"
