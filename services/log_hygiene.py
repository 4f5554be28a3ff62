"""Log records carry what callers sent (ids, paths, reasons) with its control characters escaped.

A log line is one record: an id or a URL path holding a newline, a carriage return,
U+2028 or an ANSI escape, logged verbatim, forges a second record or rewrites the
terminal of whoever reads the log. Every record's arguments (the structured fields
of ``log.warning("%s %s: …", method, path)``) — and its message when it comes
without arguments — are escaped when the record is made, whichever library logs
it: characters that are not printable (controls, line and paragraph separators,
bidirectional overrides, …) become ``\\n``, ``\\x1b``, ``\\u2028``. The message
templates are ours; tracebacks (``exc_info``) keep their lines.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape(text: str) -> str:
    """``text`` with every non-printable character (but the space) written as an escape."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escaped(c) for c in text)


def _escaped(char: str) -> str:
    code = ord(char)
    return _ESCAPES.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


class _Escaped:
    """An argument that is not text (an exception, an entry): shown escaped by ``%s`` and ``%r``."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __str__(self) -> str:
        return escape(str(self.value))

    def __repr__(self) -> str:
        return escape(repr(self.value))


def _field(value: Any) -> Any:
    """One argument of a record: text escaped; numbers and the like left for ``%d`` / ``%f``."""
    if isinstance(value, str):
        return escape(value)
    if value is None or isinstance(value, int | float):
        return value
    return _Escaped(value)


def hygienic(factory: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    """A log-record factory making the records ``factory`` makes, with their fields escaped."""

    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        if isinstance(record.args, Mapping):
            record.args = {key: _field(value) for key, value in record.args.items()}
        elif record.args:
            record.args = tuple(_field(value) for value in record.args)
        elif isinstance(record.msg, str):
            record.msg = escape(record.msg)
        return record

    make.hygienic = True  # type: ignore[attr-defined]
    return make


def install() -> None:
    """Escape every record's fields from now on, in this process (idempotent)."""
    current = logging.getLogRecordFactory()
    if not getattr(current, "hygienic", False):
        logging.setLogRecordFactory(hygienic(current))
