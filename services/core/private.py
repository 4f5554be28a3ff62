"""Owner-only files and directories: what holds personal data or opens the server.

The data directory holds the ledger (names, document numbers), the embedded
server's append-only files (every inbox) and its socket (the way to read and
write all of it). Every account on the host must be kept out: directories
0700, files 0600, whatever the process's umask — and data directories made
by earlier versions are tightened when a command opens them.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from services.core.config import ConfigError
from services.core.settings import Settings

PRIVATE_UMASK = 0o077
"""The ``liaison`` process's umask, and its embedded server's: new files 0600, directories 0700."""

_SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def data_directory(settings: Settings, *, create: bool) -> Path:
    """The data directory, owner-only (created if ``create``, else it must exist).

    Commands that only read or act on existing data never create one: run in
    the wrong directory, they would otherwise show an empty system as if it
    were the real one (issue 12.7).
    """
    path = settings.data_dir
    if not create and not path.is_dir():
        raise ConfigError(
            f"no data directory: {describe_data_dir(settings)} does not exist; "
            "run this where `liaison up` keeps its data, or set LIAISON_DATA_DIR"
        )
    private_dir(path)
    tighten_tree(path)  # data directories of earlier versions were 0755, their files 0644
    return path


def describe_data_dir(settings: Settings) -> str:
    """Which ``LIAISON_DATA_DIR`` this is, as the user set it (or not) and as resolved."""
    path = settings.data_dir
    given = (
        f"LIAISON_DATA_DIR={path}"
        if "data_dir" in settings.model_fields_set
        else f"LIAISON_DATA_DIR (unset, default {path})"
    )
    return f"{given} → {path.resolve()}"


def private_dir(path: Path) -> Path:
    """``path`` as a directory only its owner may enter: created 0700, or tightened if ours."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    _tighten(path, 0o700)
    return path


def private_file(path: Path, *, create: bool = False) -> None:
    """``path`` readable by its owner only: created empty (0600) if asked, or tightened if ours."""
    if create:
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    _tighten(path, 0o600)


def write_private(path: Path, text: str) -> None:
    """Replace ``path``'s content with ``text``, the file 0600 from its first byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    _tighten(path, 0o600)


def tighten_tree(root: Path) -> None:
    """Every directory under ``root`` 0700 and every file 0600 (those of earlier versions too)."""
    for path in (root, *root.rglob("*")):
        with contextlib.suppress(FileNotFoundError):  # a file the server is replacing now
            mode = path.lstat().st_mode
            if stat.S_ISDIR(mode):
                _tighten(path, 0o700)
            elif stat.S_ISREG(mode):
                _tighten(path, 0o600)


def private_sqlite(url: str, *, create: bool) -> Path | None:
    """The SQLite file ``url`` names, made owner-only with its companions; None if not a file.

    Created empty (0600) when asked, so that SQLite — which gives its WAL and
    shared-memory files the database file's mode — never makes them readable.
    """
    path = sqlite_path(url)
    if path is None:
        return None
    if create and path.parent.is_dir():
        private_file(path, create=True)
    for name in (path, *(path.with_name(path.name + s) for s in _SQLITE_COMPANIONS)):
        with contextlib.suppress(FileNotFoundError):
            private_file(name)
    return path


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL; None for other databases and in-memory ones."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    database = parsed.database
    if not parsed.drivername.startswith("sqlite") or not database or database == ":memory:":
        return None
    if database.startswith("file:") or parsed.query.get("mode") == "memory":
        return None
    return Path(database)


def _tighten(path: Path, mode: int) -> None:
    """Remove group and other access from ``path`` (never widening it) if this account owns it."""
    info = path.stat()
    if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) & ~mode:
        path.chmod(stat.S_IMODE(info.st_mode) & mode)
