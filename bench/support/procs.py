"""Resident memory and CPU time of processes, read from ``/proc`` (no psutil needed).

``VmRSS`` is what a process holds now, ``VmHWM`` the most it ever held
(its high-water mark); CPU time is ``utime + stime`` of ``/proc/PID/stat``.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading of one process."""

    rss: int
    """Bytes resident now (``VmRSS``)."""
    peak: int
    """Most bytes ever resident (``VmHWM``)."""
    cpu: float
    """User + system CPU seconds so far."""


def sample(pid: int) -> Sample:
    """Read ``/proc/PID/status`` and ``/proc/PID/stat``; raises ``OSError`` once it is gone."""
    kb = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            kb[key] = int(value.split()[0])
    return Sample(kb.get("VmRSS", 0) * 1024, kb.get("VmHWM", 0) * 1024, cpu_seconds(pid))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and of its children it has reaped (Valkey's AOF
    rewrites run in forked children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def command_line(pid: int) -> str:
    """The process's arguments joined by spaces (empty once it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def children(parent: int | None = None) -> list[int]:
    """The direct children of ``parent`` (default: this process)."""
    parent = os.getpid() if parent is None else parent
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent:
            found.append(int(entry.name))
    return found


def descendants(parent: int) -> list[int]:
    """Every live process below ``parent`` (children, their children, ...)."""
    found, frontier = [], [parent]
    while frontier:
        below = [pid for p in frontier for pid in children(p)]
        found += below
        frontier = below
    return found


def tree_cpu_seconds(pid: int) -> dict[int, float]:
    """:func:`cpu_seconds` of ``pid`` and of each live descendant (a worker pool's processes),
    by pid; a process gone meanwhile is left out."""
    seconds = {}
    for each in [pid, *descendants(pid)]:
        try:
            seconds[each] = cpu_seconds(each)
        except OSError:
            continue
    return seconds


def child_matching(text: str) -> int:
    """The pid of this process's child whose command line contains ``text``."""
    for pid in children():
        if text in command_line(pid):
            return pid
    raise LookupError(f"no child process running {text!r}")


@dataclass(slots=True)
class Watched:
    """What a :class:`Sampler` saw of one process: its first and last reading, and its peak."""

    name: str
    first: Sample
    last: Sample

    @property
    def peak(self) -> int:
        """The process's high-water mark of resident bytes."""
        return max(self.first.peak, self.last.peak)


@dataclass
class Sampler:
    """Samples this process's children matching ``names`` every ``every`` seconds, in a thread.

    For processes another function starts and stops (the fan-out benchmark's
    notifier): the last reading is the one just before it exited.
    """

    names: dict[str, str]
    """Label → text its command line contains."""
    every: float = 0.25
    seen: dict[int, Watched] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            for pid in children():
                self._read(pid)

    def _read(self, pid: int) -> None:
        try:
            reading = sample(pid)
        except OSError:
            return
        if pid in self.seen:
            self.seen[pid].last = reading
            return
        line = command_line(pid)
        for label, text in self.names.items():
            if text in line:
                self.seen[pid] = Watched(label, reading, reading)
