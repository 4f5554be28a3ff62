"""The whole-pipeline report put together: the sections of :mod:`bench.pipeline_report`,
the definitions, and — for a target not met — the reason, computed from the run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench import pipeline_report as rep
from bench.ingest import VALIDATE
from bench.support.procs import MB
from bench.support.report import serial

if TYPE_CHECKING:
    from bench.pipeline import Pipeline

DEFINITIONS = [
    "**Raw limit chain** = 1 / (1/validate + 1/XADD + 1/(XREADGROUP+XACK) + 1/SQL append 500 per "
    "commit): the per-event cost of the raw steps an event goes through, in series on one core. "
    "**Stages on their own cores** = min(1 / (1/validate + 1/XADD), XREADGROUP+XACK, SQL append "
    "4000 per commit): the bound if ingest and the ledger each had a free core (this machine has "
    "two, shared with Valkey and the senders).",
    "**Ingest → ledger persisted**: `liaison serve api` and `liaison serve ledger` as their own "
    "processes (embedded defaults: SQLite `synchronous=FULL`, WAL; signing checkpoints every 1000 "
    "entries) on one embedded Valkey; 4 senders in the bench process POST JSON arrays of 1000 "
    "events; from the first POST until the ledger group has acknowledged every entry (acks follow "
    "commits; XINFO GROUPS polled every 20 ms); then the stream must have taken every event "
    "(`entries-added`; the ledger trims what it acknowledged) and `SqlLedger.count()` hold "
    "them all, and no dead letter. A fresh server and fresh processes for each size.",
    "**Stages apart** (at the split size, on N more events): the ledger frozen (SIGSTOP) while "
    "ingest takes them — HTTP ingest alone; then let go — stream → ledger alone.",
    "**Memory**: `VmRSS` from /proc/PID/status when the process is ready and after the end-to-end "
    "phase, `VmHWM` as the peak. The commands `liaison ledger replay|verify` are sampled every "
    "20 ms while they run. Valkey trims the streams as the ledger acknowledges "
    "(`STREAM_RETENTION` 0) but keeps one `seen` hash field per event for the dedupe window "
    "(7 days): that part grows with the events of the window; the Python processes must not.",
    "**CPU per event**: utime + stime of /proc/PID/stat over the phase, divided by its events. "
    "`2 cores ÷ total` is the most this machine could do if the work overlapped perfectly.",
    "**Replay + verify**: in-process `audit.replay` (what `liaison ledger replay` runs) to "
    "/dev/null and `SqlLedger.verify`, on what the largest run persisted; raw scans are the "
    "plain-driver loops of `bench/support/raw_sql.py` on the same file.",
    "Fan-out: `bench/fanout.py` (its own embedded Valkey and `liaison serve notifier`); latency "
    "from `publish` returning to the last recipient's feed entry read.",
    "Figures are from one run on a 2-core machine shared with other work: compare ratios.",
]

PROFILE = (
    "Profile of `liaison serve ingest` (py-spy, 200 Hz, 100,000 events in batches of 1000, "
    "2026-11-25; ~55 µs of CPU per event): validation 38 % (`CloudEvent.model_validate` of the "
    "parsed dict, of which the `seizure.reported` data model 28 % and the Python pattern checks "
    "of refs and country codes ~6 %); publishing 28 % (the canonical JSON — `model_dump` and "
    "`json.dumps(sort_keys=True)` — 19 %, packing the Lua call ~2 %); `json.loads` of the "
    "request body 12 %; FastAPI, uvicorn and the event loop the rest. The canonical text is "
    "hashed into the ledger, so its encoder is a contract, not a detail to swap. That profile "
    "predates two cuts (~62 → ~49 µs per event in A/B runs): the collector's young pass ran ~70 "
    "times per batch for nothing (now every 50,000 allocations) and `json.dumps` built an "
    "encoder per call (now one); what remains is validation and the canonical JSON itself — "
    '`bench/README.md`, "Ingest CPU".'
)


def reasons(result: Pipeline) -> list[str]:
    """Why a target was missed, from what this run measured (empty when all hold)."""
    raw, big, out = result.ledger.raw, result.largest, []
    assert big.e2e
    e2e = big.e2e
    us = {n: e2e.cpu[n] * 1e6 / e2e.events for n in rep.PROCESSES}
    total = sum(us.values())
    if e2e.rate < rep.TARGETS["e2e"] and total:  # no CPU tick measured: nothing to explain
        validate_us = 1e6 / raw[VALIDATE]
        out.append(
            f"Ingest → ledger persisted is {e2e.rate:,.0f}/s, below {rep.TARGETS['e2e']:,.0f}/s: "
            f"the processes spent {total:.0f} µs of CPU per event (ingest {us['ingest']:.0f}, "
            f"ledger {us['ledger']:.0f}, Valkey {us['valkey']:.0f}, senders {us['bench']:.0f}); "
            f"two cores give at most 2 / {total:.0f} µs = {2e6 / total:,.0f}/s with perfect "
            f"overlap, and the run reached {e2e.rate * total / 2e6:.0%} of that. Ingest alone "
            f"must validate every event: pydantic's raw limit is {validate_us:.0f} µs per event "
            f"on one core ({raw[VALIDATE]:,.0f}/s), so ingest cannot exceed "
            f"{serial(raw[VALIDATE], raw[rep.XADD_CLIENT]):,.0f}/s even with a core to itself."
        )
        out.append(PROFILE)
    if e2e.rate / rep.chain(raw) < rep.TARGETS["e2e ratio"]:
        out.append(f"Ratio to the raw limit chain {e2e.rate / rep.chain(raw):.2f} < 0.40.")
    r = big.reads
    if r and big.events / (r.replay + r.verify) < rep.TARGETS["reads"]:
        out.append(
            f"Replay + verify: replay {r.replay:.1f} s, verify {r.verify:.1f} s for {big.events:,} "
            f"entries, against {r.raw_lines:.1f} s and {r.raw_rehash:.1f} s for the plain-driver "
            f"scans of the same file in the same minute: the scans are slowed alike, so read "
            f"the ratio ({(r.raw_lines + r.raw_rehash) / (r.replay + r.verify):.2f})."
        )
    return out


def growth(result: Pipeline) -> list[str]:
    """What grows with the events: Valkey's dedupe index; the Python processes must not."""
    small, big = result.points[0], result.largest
    us = [p.e2e.cpu["valkey"] * 1e6 / p.events for p in (small, big) if p.e2e]
    mb = {n: (small.memory[n][1].rss / MB, big.memory[n][1].rss / MB) for n in rep.SERVICES}
    held = ", ".join(f"{n} {a:.0f} → {b:.0f} MB" for n, (a, b) in mb.items())
    bounded = max(b - a for a, b in mb.values()) < 50
    verdict = "bounded, not proportional to events" if bounded else "**growing: investigate**"
    return [
        f"From {small.events:,} to {big.events:,} events the services' RSS after the run went "
        f"{held}: {verdict}. Valkey: the stream is trimmed as the ledger acknowledges "
        f"(~{big.server['stream'] / big.events:.0f} B per event left at the end), the `seen` "
        f"index of the dedupe window keeps ~{big.server['seen'] / big.events:.0f} B per event: "
        f"{big.memory['valkey'][1].rss / MB:.0f} MB after {big.events:,}. Its CPU "
        f"per event went {us[0]:.0f} → {us[-1]:.0f} µs: it rewrote its append-only file "
        f"{big.server['aof_rewrites']} times (Valkey's default: whenever the file has doubled "
        f"since the last rewrite), each a fork writing the whole dataset, so that cost grows with what the server holds."
    ]


def render(result: Pipeline) -> str:
    """The whole report as Markdown."""
    report, lines = result.ledger, []
    lines += [f"# Whole-pipeline benchmark — {report.machine.get('date', '')}", ""]
    lines += [f"- **run time**: {result.seconds:.0f} s (`make bench`)"]
    lines += [
        f"- **{k}**: {v}" for k, v in report.machine.items() if k not in ("date", "postgresql")
    ]
    lines += [f"- **postgresql**: {result.postgres}"]
    lines += [f"- **payload**: `seizure.reported`, {report.payload_bytes} bytes of JSON on average"]
    lines += ["", "## Product figures next to the raw limits", "", *rep.summary(result)]
    why = reasons(result)
    if why:
        lines += ["", "### Targets not met: why", "", *(f"- {w}" for w in why)]
    lines += [
        "",
        "## Scale curve (processes, SQLite, one embedded Valkey)",
        "",
        *rep.scale(result.points),
        "",
        *growth(result),
    ]
    lines += ["", "## Resident memory (MB): ready → after, and peak", "", *rep.memory(result)]
    lines += ["", "## Where the CPU goes (µs per event)", "", *rep.cpu(result)]
    lines += [
        "",
        "## Raw limits (same machine, same run)",
        "",
        "| raw limit | per second |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {rate:,.0f} |" for name, rate in report.raw.items()]
    lines += [f"| raw limit chain (serial, defined below) | {rep.chain(report.raw):,.0f} |"]
    lines += [f"| stages on their own cores (defined below) | {rep.staged(report.raw):,.0f} |"]
    lines += [
        "",
        f"## The ledger on its own (`python -m bench.ledger`, {report.events:,} events, in-process)",
        "",
    ]
    for section, items in report.figures.items():
        lines += rep.figures(section, items)
    lines += ["## Definitions", "", *(f"- {d}" for d in DEFINITIONS)]
    lines += ["", "### From the ledger benchmark", "", *(f"- {n}" for n in report.notes)]
    return "\n".join(lines) + "\n"
