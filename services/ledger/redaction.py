"""Statement parameters hold persons' identities: keep them out of the drivers' logs."""

from __future__ import annotations

import logging
from typing import Any


class _CallsWithoutArguments(logging.Filter):
    """aiosqlite logs each call at DEBUG with its arguments: the statement's parameters,
    which hold persons' identities. The record stays; the call is named, not printed."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_name_of(arg) if callable(arg) else arg for arg in record.args)
        return True


def _name_of(call: Any) -> str:
    target = getattr(call, "func", call)  # functools.partial(cursor.execute, sql, params)
    return str(getattr(target, "__qualname__", type(target).__name__))


_FILTER = _CallsWithoutArguments()


def install() -> None:
    """Filter aiosqlite's records (idempotent)."""
    logger = logging.getLogger("aiosqlite")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
