"""What every agency adapter provides, and the small parsers they share.

An adapter reads an agency's export file as :class:`Record` s (one per row,
line or message, numbered as the agency would find it in the file) and maps
one record onto a candidate CloudEvent (a JSON-ready dict). It never
validates the event itself: :func:`services.ingest.intake.validate_event`
does, so an imported event means what a published one means.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import IO, Any, Protocol, TypeVar

from schemas.topology import Topology

TASHKENT = timezone(timedelta(hours=5), "UZT")
"""Uzbekistan time (UTC+5, no daylight saving): agencies write local times without a zone."""

T = TypeVar("T")


class FileUnreadable(ValueError):
    """The file as a whole cannot be read (e.g. a CSV header lacks a required column)."""


class RowInvalid(ValueError):
    """One record cannot be mapped; ``errors`` are ``(field, reason)`` pairs in the agency's terms."""

    def __init__(self, errors: Sequence[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{field}: {reason}" for field, reason in errors))
        self.errors = tuple(errors)


@dataclass(frozen=True, slots=True)
class Record:
    """One record of an agency file: its position and its parsed form, or why it is unreadable."""

    row: int
    """Line number (CSV, JSON lines) or message position (XML), counted from 1."""
    raw: Any
    """The parsed record for :meth:`Adapter.to_event`; the text as read when ``problem`` is set."""
    problem: str | None = None
    """Why the record could not even be read (bad JSON, wrong field count, not UTF-8...)."""


class Adapter(Protocol):
    """An agency's export format."""

    @property
    def name(self) -> str:
        """What ``liaison import --adapter`` calls it."""
        ...

    @property
    def agency(self) -> str:
        """The agency's code, as in ``data.agencies``."""
        ...

    @property
    def fields(self) -> Mapping[str, str]:
        """Event field path prefix → the agency's own field name, for error messages."""
        ...

    def records(self, file: IO[bytes]) -> Iterator[Record]:
        """The file's records in order; unreadable ones carry their ``problem``."""
        ...

    def to_event(self, raw: Any, topology: Topology) -> dict[str, Any]:
        """A candidate CloudEvent from one record, or :class:`RowInvalid`."""
        ...

    def dump(self, raw: Any) -> str:
        """The record as text, for the dead-letter stream."""
        ...

    def load(self, text: str) -> Any:
        """The record back from :meth:`dump` (for ``liaison dlq retry``), or :class:`RowInvalid`."""
        ...


class Problems:
    """Collects field errors of one record, so that all of them are reported at once."""

    def __init__(self) -> None:
        self.errors: list[tuple[str, str]] = []

    def take(self, field: str, parse: Callable[[], T]) -> T | None:
        """``parse()``, or None with its ValueError recorded against ``field``."""
        try:
            return parse()
        except ValueError as exc:
            self.errors.append((field, str(exc)))
            return None

    def need(self, field: str, value: object, parse: Callable[[Any], T]) -> T | None:
        """``parse(value)`` of a required value; "required" when it is missing or blank."""
        if value is None or (isinstance(value, str) and not value.strip()):
            self.add(field, "required")
            return None
        return self.take(field, lambda: parse(value))

    def add(self, field: str, reason: str) -> None:
        """Record one error."""
        self.errors.append((field, reason))

    def check(self) -> None:
        """Raise :class:`RowInvalid` if anything was recorded."""
        if self.errors:
            raise RowInvalid(self.errors)


def agency_field(path: str, fields: Mapping[str, str]) -> str:
    """The agency's name for an event field path: its longest mapped prefix replaced.

    ``data.drugs.0.quantity`` with ``{"data.drugs": "items"}`` → ``items.0.quantity``.
    """
    best = ""
    for prefix in fields:
        if (path == prefix or path.startswith(prefix + ".")) and len(prefix) > len(best):
            best = prefix
    return fields[best] + path[len(best) :] if best else path


def parse_quantity(value: object) -> float:
    """A positive amount: a number, or text with a decimal comma or point (``"20,032"``)."""
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        text = "".join(value.split()).replace("\u202f", "").replace(",", ".")
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"not a number: {value!r}") from None
    else:
        raise ValueError(f"not a number: {value!r}")
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"must be a positive number, not {value!r}")
    return number


def parse_local_time(date: str, time: str | None = None) -> datetime:
    """``DD.MM.YYYY`` or ``YYYY-MM-DD`` and optional ``HH:MM[:SS]``, Uzbekistan time."""
    date, time = date.strip(), (time or "").strip() or "00:00"
    for layout in ("%d.%m.%Y", "%Y-%m-%d", "%d/%m/%Y"):
        try:
            day = datetime.strptime(date, layout)
            break
        except ValueError:
            continue
    else:
        raise ValueError(f"not a date DD.MM.YYYY: {date!r}")
    for layout in ("%H:%M", "%H:%M:%S"):
        try:
            clock = datetime.strptime(time, layout)
            break
        except ValueError:
            continue
    else:
        raise ValueError(f"not a time HH:MM: {time!r}")
    return datetime.combine(day.date(), clock.time(), TASHKENT)


def parse_timestamp(value: object) -> datetime:
    """RFC 3339 with a zone, or a local ``YYYY-MM-DD HH:MM`` taken as Uzbekistan time."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"not a date and time: {value!r}")
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not a date and time (RFC 3339): {value!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=TASHKENT)


def parse_countries(value: object) -> list[str]:
    """``"TJ-UZ-KZ"``, ``"TJ > UZ > KZ"``, ``"TJ,UZ,KZ"`` or a list → ``["TJ", "UZ", "KZ"]``."""
    if isinstance(value, list):
        parts = [str(v) for v in value]
    elif isinstance(value, str):
        parts = value.replace(">", " ").replace("-", " ").replace(",", " ").split()
    else:
        raise ValueError(f"not a list of country codes: {value!r}")
    codes = [p.strip().upper() for p in parts if p.strip()]
    bad = [c for c in codes if len(c) != 2 or not c.isalpha() or not c.isascii()]
    if bad:
        raise ValueError(f"not ISO 3166 alpha-2 country codes: {', '.join(bad)}")
    return codes


def parse_count(value: object) -> int:
    """A non-negative whole number, written as a number or as text."""
    text = (
        str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    )
    if not text.isdigit():
        raise ValueError(f"not a whole number: {value!r}")
    return int(text)


def text_or_none(value: object) -> str | None:
    """Stripped text; None for missing or blank."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None
