"""What the CLI prints for people: consoles, and free text made safe to show.

Event fields, dead-letter reasons, officer names and error messages come from
other agencies' systems and from people. Printed raw, a newline forges a line
of its own (a fake "closed by …" step in a trail), an ANSI escape rewrites the
screen ("ALL CLEAR"), and ``[/x]`` is rich markup that crashes the command.
Every human-readable output passes such text through :func:`safe` (for rich)
or :func:`printable` (for plain writes); JSON output is left exact.
"""

from __future__ import annotations

import os
import sys
import unicodedata

from rich.console import Console
from rich.markup import escape

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
"""Embeddings, overrides and isolates: they reorder what follows on the screen."""


def _shown(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _unsafe(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Zl", "Zp") or char in _BIDI


def printable(text: object) -> str:
    """``text`` with control characters, line separators and bidi overrides as visible escapes."""
    value = str(text)
    if value.isprintable():  # the common case, in C
        return value
    return "".join(_shown(c) if _unsafe(c) else c for c in value)


def safe(text: object) -> str:
    """``text`` ready for rich: :func:`printable`, then its markup escaped (``[/x]`` shows as is)."""
    return escape(printable(text))


def console(*, stderr: bool = False) -> Console:
    """A console for people: the terminal's width, ``COLUMNS`` if set, else 132 when piped."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or os.environ.get("COLUMNS") else 132
    return Console(stderr=stderr, width=width)
