"""Acting as a second, unprivileged local account: what can it read, and can it connect?

The suite runs as root in CI, where :func:`other_account` creates the account
(idempotently, with ``useradd``) and :func:`probe` runs a small script as it
(``setpriv``). Without root these tests cannot act as anyone else: outside CI
they skip, saying why; under ``CI`` they fail, so they never silently stop
running there.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ACCOUNT = "liaison-probe"

_PROBE = r"""
import json, os, socket, sys
from urllib.parse import unquote, urlsplit

out = {"read": {}, "connect": None}
for path in sys.argv[2:]:
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            with open(path, "rb") as handle:
                handle.read(1)
        out["read"][path] = "read"
    except OSError as exc:
        out["read"][path] = type(exc).__name__
url = urlsplit(sys.argv[1])
try:
    if url.scheme == "unix":
        sock = socket.socket(socket.AF_UNIX)
        target = unquote(url.path)
    else:
        sock = socket.socket()
        target = (url.hostname, url.port or 6379)
    sock.settimeout(5)
    sock.connect(target)
    sock.sendall(b"PING\r\n")
    out["connect"] = sock.recv(64).decode(errors="replace")
except OSError as exc:
    out["connect"] = type(exc).__name__
print(json.dumps(out))
"""


@dataclass(frozen=True)
class Account:
    """A local account without privileges, and an interpreter it may run."""

    name: str
    uid: int
    gid: int
    python: str


@dataclass(frozen=True)
class Probe:
    """What the account could do: per path ``"read"`` or the error's name; the server's reply."""

    read: dict[str, str]
    connect: str | None


def other_account() -> Account:
    """The unprivileged account (created if missing); skips or fails without root."""
    if os.geteuid() != 0:
        reason = "needs root to create a second local account and act as it"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; under CI these tests must run")
        pytest.skip(f"UNPRIVILEGED-ACCOUNT TESTS SKIPPED — {reason} (they run in CI, as root)")
    try:
        entry = pwd.getpwnam(ACCOUNT)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", ACCOUNT],
            check=False, capture_output=True,
        )  # fmt: skip  # another session may have created it meanwhile: look again
        entry = pwd.getpwnam(ACCOUNT)
    for candidate in ("/usr/bin/python3", shutil.which("python3")):
        if candidate and _runs(entry, candidate):
            return Account(ACCOUNT, entry.pw_uid, entry.pw_gid, candidate)
    pytest.fail(f"no python3 that {ACCOUNT} may run (tried /usr/bin/python3 and PATH)")


def _command(account: pwd.struct_passwd | Account, *argv: str) -> list[str]:
    uid = account.pw_uid if isinstance(account, pwd.struct_passwd) else account.uid
    gid = account.pw_gid if isinstance(account, pwd.struct_passwd) else account.gid
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", *argv]


def _runs(entry: pwd.struct_passwd, python: str) -> bool:
    done = subprocess.run(_command(entry, python, "-c", "pass"), capture_output=True, check=False,
                          env={"PATH": "/usr/bin:/bin"}, cwd="/")  # fmt: skip
    return done.returncode == 0


def probe(account: Account, url: str, paths: list[Path]) -> Probe:
    """As ``account``: try to read each path and to PING the server at ``url``."""
    done = subprocess.run(
        _command(account, account.python, "-c", _PROBE, url, *map(str, paths)),
        capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin"}, cwd="/",
        timeout=30,
    )  # fmt: skip
    doc = json.loads(done.stdout)
    return Probe(doc["read"], doc["connect"])


@contextlib.contextmanager
def public_directory() -> Iterator[Path]:
    """A fresh directory every account may enter (0755, in the system's temporary directory,
    as /srv or /home would be): only the modes we set inside it keep the other account out."""
    path = Path(tempfile.mkdtemp(prefix="liaison-shared-"))
    try:
        path.chmod(0o755)
        for parent in path.parents:
            if not parent.stat().st_mode & 0o001:
                pytest.fail(f"{parent} is closed to other accounts: the probe would prove nothing")
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
