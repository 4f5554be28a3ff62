"""The benchmark's results: figures next to the raw limits of the same run, as Markdown."""

from __future__ import annotations

import os
import platform
import sqlite3
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from redis.utils import HIREDIS_AVAILABLE

PACKAGES = ("faststream", "redis", "SQLAlchemy", "aiosqlite", "asyncpg", "pydantic")


@dataclass(frozen=True, slots=True)
class Figure:
    """A product figure (per second) next to the raw limit it is bounded by."""

    name: str
    rate: float
    limit_name: str
    limit: float
    target: float | None = None

    @property
    def ratio(self) -> float:
        """Figure over limit."""
        return self.rate / self.limit if self.limit else 0.0


@dataclass(slots=True)
class Report:
    """Everything one run measured."""

    events: int
    payload_bytes: int
    machine: dict[str, str] = field(default_factory=dict)
    raw: dict[str, float] = field(default_factory=dict)
    """Raw limit name → per second."""
    figures: dict[str, list[Figure]] = field(default_factory=dict)
    """Section (Redis, SQLite, PostgreSQL) → figures."""
    notes: list[str] = field(default_factory=list)

    def add(self, section: str, figure: Figure) -> None:
        """Add one figure under ``section``."""
        self.figures.setdefault(section, []).append(figure)

    def failed_targets(self) -> list[str]:
        """The figures below their target."""
        return [
            f"{section}: {f.name}"
            for section, figures in self.figures.items()
            for f in figures
            if f.target is not None and f.rate < f.target
        ]


def serial(*rates: float) -> float:
    """The rate of stages done one after the other by one worker: 1 / Σ(1/rate)."""
    return 1 / sum(1 / r for r in rates)


def machine(redis_version: str) -> dict[str, str]:
    """The machine, the interpreter and the servers of this run."""
    model = next(
        (line.split(":", 1)[1].strip() for line in _cpuinfo() if "model name" in line), "?"
    )
    info = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": f"{os.cpu_count()} ({len(os.sched_getaffinity(0))} usable), {model}",
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "server": redis_version,
        "sqlite": sqlite3.sqlite_version,
    }
    info["packages"] = ", ".join(f"{p} {_version(p)}" for p in PACKAGES)
    info["redis-py parser"] = "hiredis" if HIREDIS_AVAILABLE else "pure Python (no hiredis)"
    return info


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "-"


def render(report: Report, title: str = "Ledger benchmark") -> str:
    """The report as Markdown."""
    lines = [f"# {title} — {report.events:,} events", ""]
    lines += [f"- **{key}**: {value}" for key, value in report.machine.items()]
    lines += [f"- **payload**: `seizure.reported`, {report.payload_bytes} bytes of JSON on average"]
    lines += ["", "## Raw limits (same machine, same run)", "", "| raw limit | per second |"]
    lines += ["|---|---:|"] + [f"| {name} | {rate:,.0f} |" for name, rate in report.raw.items()]
    for section, figures in report.figures.items():
        lines += ["", f"## {section}", ""]
        lines += ["| figure | per second | raw limit | limit per second | ratio | target |"]
        lines += ["|---|---:|---|---:|---:|---|"]
        for f in figures:
            target = (
                ""
                if f.target is None
                else f"≥ {f.target:,.0f} " + ("✓" if f.rate >= f.target else "✗")
            )
            lines.append(
                f"| {f.name} | {f.rate:,.0f} | {f.limit_name} | {f.limit:,.0f} | {f.ratio:.2f} | {target} |"
            )
    if report.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in report.notes]
    return "\n".join(lines) + "\n"


def write(report: Report, path: Path, title: str = "Ledger benchmark") -> None:
    """Write the Markdown atomically (``*.tmp`` then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(render(report, title))
    tmp.replace(path)
