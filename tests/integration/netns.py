"""Simulated hosts on one machine: network namespaces joined by a Linux bridge.

Each :class:`Host` is a namespace with one veth link, its peer a port of the network's
bridge; the test process (the root namespace) is a host too, at ``.254`` on the bridge.
Faults: a **partition** moves hosts' ports to a second bridge (their packets to the rest
are silently dropped, as a cut cable or a firewall drop would: connects time out, no
reset); a **crash** SIGKILLs every process of a host. Needs root (CAP_NET_ADMIN):
:func:`unavailable` says why not; outside CI the suite then skips, under CI it fails.

Names carry the test process's id (``lxf<pid>…``), so that :func:`sweep` can remove what a
killed earlier run left behind without touching a running one's.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass, field

PREFIX = "lxf"


def _ip(*args: str, check: bool = True) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def unavailable() -> str | None:
    """Why namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "not root: network namespaces need CAP_NET_ADMIN"
    if not shutil.which("ip"):
        return "no `ip` command (iproute2)"
    name = f"{PREFIX}{os.getpid():x}probe"
    try:
        _ip("netns", "add", name)
    except RuntimeError as exc:
        return f"cannot create a network namespace: {exc}"
    _ip("netns", "del", name, check=False)
    return None


def sweep() -> None:
    """Remove the namespaces and bridges of earlier runs whose process is gone."""
    owners = set()
    for line in _ip("netns", "list").splitlines() + _ip("-o", "link", "show").splitlines():
        match = re.search(rf"\b{PREFIX}([0-9a-f]+)x", line)
        if match:
            owners.add(match.group(1))
    for owner in owners:
        with contextlib.suppress(ValueError):
            if int(owner, 16) != os.getpid() and not os.path.exists(f"/proc/{int(owner, 16)}"):
                Network(f"{PREFIX}{owner}x").remove(everything=True)


def _free_subnet() -> str:
    """A 10.x.y.0/24 that no route of this machine uses."""
    routes = _ip("-4", "route", "show", "table", "all")
    while True:
        subnet = f"10.{random.randint(200, 250)}.{random.randint(0, 255)}"
        if f"{subnet}." not in routes:
            return subnet


@dataclass
class Host:
    """One simulated machine: a namespace, its address, its link's port on the bridge."""

    network: Network
    name: str
    index: int

    @property
    def netns(self) -> str:
        """The namespace's name."""
        return f"{self.network.tag}{self.name}"

    @property
    def address(self) -> str:
        """Its IPv4 address on the network."""
        return f"{self.network.subnet}.{self.index}"

    @property
    def port(self) -> str:
        """Its link's end in the root namespace (a port of a bridge)."""
        return f"{self.network.tag}v{self.index}"

    def launcher(self) -> list[str]:
        """The prefix that runs a command on this host."""
        return ["ip", "netns", "exec", self.netns]

    def pids(self) -> list[int]:
        """Every process running on this host."""
        return [int(p) for p in _ip("netns", "pids", self.netns, check=False).split()]

    def crash(self) -> None:
        """SIGKILL every process of the host at once (a power cut, as far as the processes
        can tell)."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@dataclass
class Network:
    """A bridge (``A``), a spare one for partitions (``B``), and the hosts on them."""

    tag: str = field(
        default_factory=lambda: f"{PREFIX}{os.getpid():x}x{random.randrange(16**3):03x}"
    )
    subnet: str = field(default_factory=_free_subnet)
    hosts: dict[str, Host] = field(default_factory=dict)
    cut: set[str] = field(default_factory=set)

    @property
    def gateway(self) -> str:
        """The test process's own address on the network."""
        return f"{self.subnet}.254"

    def bridge(self, side: str) -> str:
        """The bridge of side ``A`` (everyone) or ``B`` (the hosts cut off)."""
        return f"{self.tag}{side}"

    def create(self) -> Network:
        """Make both bridges; the test process joins ``A``."""
        for side in "AB":
            _ip("link", "add", self.bridge(side), "type", "bridge")
            _ip("link", "set", self.bridge(side), "up")
        _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge("A"))
        return self

    def add(self, name: str) -> Host:
        """A new host on side ``A``."""
        host = Host(self, name, len(self.hosts) + 1)
        _ip("netns", "add", host.netns)
        _ip("link", "add", host.port, "type", "veth", "peer", "name", "eth0", "netns", host.netns)
        _ip("link", "set", host.port, "master", self.bridge("A"), "up")
        _ip("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0")
        _ip("-n", host.netns, "link", "set", "eth0", "up")
        _ip("-n", host.netns, "link", "set", "lo", "up")
        self.hosts[name] = host
        return host

    def partition(self, *names: str) -> None:
        """Cut these hosts off from the rest (they still reach each other, and the test
        process still reaches them: it is on both sides)."""
        for name in names:
            host = self.hosts[name]
            _ip("link", "set", host.port, "master", self.bridge("B"))
            _ip("route", "add", f"{host.address}/32", "dev", self.bridge("B"))
            self.cut.add(name)
        _ip("link", "set", self.bridge("B"), "up")

    def heal(self) -> None:
        """Every host back on side ``A``."""
        for name in sorted(self.cut):
            host = self.hosts[name]
            _ip("route", "del", f"{host.address}/32", "dev", self.bridge("B"), check=False)
            _ip("link", "set", host.port, "master", self.bridge("A"))
        self.cut.clear()

    def remove(self, *, everything: bool = False) -> None:
        """Kill every process of every host, delete the namespaces and the bridges (also
        what a crashed run of the same tag left, with ``everything``)."""
        names = [h.netns for h in self.hosts.values()]
        if everything:
            names = [
                line.split()[0] for line in _ip("netns", "list").splitlines()
                if line.startswith(self.tag)
            ]  # fmt: skip
        for name in names:
            for pid in _ip("netns", "pids", name, check=False).split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            _ip("netns", "del", name, check=False)
        links = [line.split(":")[1].strip().split("@")[0]
                 for line in _ip("-o", "link", "show").splitlines()]  # fmt: skip
        for link in links:
            if link.startswith(self.tag):
                _ip("link", "del", link, check=False)
