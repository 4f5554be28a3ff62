"""The soak's minutes: what one minute measured, the table (``soak.md``), the rows
(``soak.json``) and the plot (``soak.png``, matplotlib: ``pip install -e '.[bench]'``)."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Window:
    """Latencies (seconds) and failures seen since the last minute closed."""

    publish: list[float] = field(default_factory=list)
    fanout: list[float] = field(default_factory=list)
    ack: list[float] = field(default_factory=list)
    read: list[float] = field(default_factory=list)
    errors: int = 0


def _q(values: list[float], q: float) -> float | None:
    """The ``q`` quantile in milliseconds (nearest rank), None without values."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)


@dataclass
class Minute:
    """One row: elapsed minutes, counts, p50/p99 in ms, backlog peaks, memory peaks (MB)."""

    minute: float
    publishes: int
    deliveries: int
    acks: int
    reads: int
    errors: int
    latency: dict[str, list[float | None]]
    backlog: dict[str, int]
    memory: dict[str, float]
    webhooks: tuple[int, int, int]

    @classmethod
    def of(
        cls,
        elapsed: float,
        w: Window,
        memory: dict[str, float],
        backlog: dict[str, int],
        hooks: tuple[int, int, int],
    ) -> Minute:
        """The row of one closed window."""
        latency = {
            name: [_q(values, 0.5), _q(values, 0.99)]
            for name, values in (
                ("publish", w.publish),
                ("fanout", w.fanout),
                ("ack", w.ack),
                ("read", w.read),
            )
        }
        return cls(
            round(elapsed, 2),
            len(w.publish),
            len(w.fanout),
            len(w.ack),
            len(w.read),
            w.errors,
            latency,
            dict(backlog),
            {k: round(v, 1) for k, v in sorted(memory.items())},
            hooks,
        )

    def line(self) -> str:
        """One line for the terminal."""
        lat = " ".join(f"{k} {v[0]}/{v[1]}" for k, v in self.latency.items())
        mem = " ".join(f"{k} {v}" for k, v in self.memory.items())
        return (
            f"min {self.minute:5.1f}: pub {self.publishes} fan {self.deliveries} ack {self.acks}"
            f" err {self.errors} | ms {lat} | backlog {self.backlog} | MB {mem}"
        )


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _trend(rows: list[Minute], pick: str) -> str:
    """First-third vs last-third median of a memory role (MB)."""
    values = [r.memory.get(pick, 0.0) for r in rows]
    third = max(1, len(values) // 3)
    head, tail = statistics.median(values[:third]), statistics.median(values[-third:])
    return f"{head:.1f} → {tail:.1f} MB ({tail - head:+.1f})"


def render(rows: list[Minute], load: tuple[float, float, float] | None) -> str:
    """The markdown table of a run."""
    roles = sorted({k for r in rows for k in r.memory})
    lines = [
        "# Soak: a day of traffic, compressed (`make soak`, `bench/soak.py`)",
        "",
        f"{len(rows)} minutes; {sum(r.publishes for r in rows)} publishes, "
        f"{sum(r.deliveries for r in rows)} deliveries seen live, {sum(r.acks for r in rows)} "
        f"acknowledgements, {sum(r.reads for r in rows)} reads, "
        f"{sum(r.errors for r in rows)} errors"
        + (
            f"; load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}"
            if load
            else ""
        )
        + ".",
        "",
        "Memory, median of the first third → of the last third of the run: "
        + "; ".join(f"{role} {_trend(rows, role)}" for role in roles)
        + ".",
        "",
        "Latency in ms, p50 / p99 of each minute (publish: POST /v1/events → 202; fan-out: "
        "publish → the delivery on the unit's live stream; ack: POST …/ack → 200; read: inbox, "
        "ledger and console GETs). Backlog: the minute's peak of group lag + pending per stream; "
        "server: Valkey `used_memory`. Memory: the minute's peak RSS per process, MB. Webhooks: "
        "cumulative deliveries answered 200 / 500 / slow by the flaky receiver.",
        "",
        "| min | pub | fan-out | ack | publish | fan-out | ack | read | err | backlog "
        "(seizures/alerts/receipts/webhooks) | server MB | "
        + " | ".join(f"{r} MB" for r in roles)
        + " | webhooks |",
        "|" + "---:|" * (13 + len(roles)),
    ]
    for r in rows:
        lat = [f"{_fmt(r.latency[k][0])} / {_fmt(r.latency[k][1])}" for k in r.latency]
        backlog = "/".join(
            str(r.backlog.get(k, 0)) for k in ("seizures", "alerts", "receipts", "webhooks")
        )
        mem = [_fmt(r.memory.get(role)) for role in roles]
        hooks = "/".join(map(str, r.webhooks))
        cells = [
            f"{r.minute:.0f}",
            str(r.publishes),
            str(r.deliveries),
            str(r.acks),
            *lat,
            str(r.errors),
            backlog,
            str(r.backlog.get("server_mb", "")),
            *mem,
            hooks,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: list[Minute], path: Path) -> None:
    """Memory (top) and latency p99 (bottom) over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r.minute for r in rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for role in sorted({k for r in rows for k in r.memory}):
        top.plot(x, [r.memory.get(role) for r in rows], label=f"{role} RSS")
    top.plot(x, [r.backlog.get("server_mb") for r in rows], label="Valkey used_memory", ls="--")
    top.set_ylabel("MB")
    top.set_ylim(bottom=0)
    top.legend(loc="upper left", fontsize="small")
    top.set_title("liaison up under a steady mix: memory and latency per minute")
    for name in ("publish", "fanout", "ack"):
        for q, style in ((0, "-"), (1, ":")):
            values = [r.latency[name][q] for r in rows]
            label = f"{name} {'p50' if q == 0 else 'p99'}"
            bottom.plot(x, values, style, label=label)
    bottom.set_ylabel("ms")
    bottom.set_yscale("log")
    bottom.set_xlabel("minutes")
    bottom.legend(loc="upper left", fontsize="small", ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_results(
    rows: list[Minute],
    out: Path,
    *,
    final: bool,
    load: tuple[float, float, float] | None = None,
) -> None:
    """``soak.json`` every minute; ``soak.md`` and ``soak.png`` at the end."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "soak.json").write_text(json.dumps([asdict(r) for r in rows], indent=1) + "\n")
    if final and rows:
        (out / "soak.md").write_text(render(rows, load))
        plot(rows, out / "soak.png")
