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


class HygienicRecord(logging.LogRecord):
    """A record whose message is rendered with its fields escaped.

    Escaped when rendered, not when made: filters still see the arguments as they
    were (``services.ledger.redaction`` replaces a driver's call by its name).
    """

    def getMessage(self) -> str:
        """The message with every field escaped (:func:`escape`)."""
        msg = str(self.msg)
        if isinstance(self.args, Mapping):
            return msg % {key: _field(value) for key, value in self.args.items()}
        if self.args:
            return msg % tuple(_field(value) for value in self.args)
        return escape(msg)


def _hygienic(factory: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    """Records as ``factory`` makes them, rendered as :class:`HygienicRecord` renders them."""

    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        if not isinstance(record, HygienicRecord):
            record.getMessage = HygienicRecord.getMessage.__get__(record)  # type: ignore[method-assign]
        return record

    return make


def install() -> None:
    """Render every record's fields escaped from now on, in this process (idempotent)."""
    current = logging.getLogRecordFactory()
    if current is logging.LogRecord:
        logging.setLogRecordFactory(HygienicRecord)
    elif current is not HygienicRecord and not getattr(current, "hygienic", False):
        wrapped = _hygienic(current)
        wrapped.hygienic = True  # type: ignore[attr-defined]
        logging.setLogRecordFactory(wrapped)
