"""Alert data (``alert.raised``, ``alert.updated``, ``alert.cancelled``, ``alert.closed``).

Also home of the building blocks every event model shares: the frozen base
model, country codes, unit ids, references, free text and timestamps.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, NamedTuple, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from schemas.limits import (
    MAX_COUNT,
    MAX_NAME,
    MAX_PERSONS,
    MAX_RECIPIENTS,
    MAX_ROUTE,
    MAX_TEXT,
    MAX_VEHICLES,
    NOTE_PATTERN,
    ONE_LINE_PATTERN,
    at_most,
    crlf_to_lf,
)
from schemas.vocabulary import UNIT_PATTERN, Severity

COUNTRY_PATTERN = r"^[A-Z]{2}$"
# One line: no control character (C0, DEL, C1), nor the Unicode line and paragraph
# separators, which would break a log line or a terminal row just the same.
REF_PATTERN = r"^[^\x00-\x1F\x7F-\x9F\u2028\u2029]+$"
PRINTABLE = r"[^\x00-\x1F\x7F-\x9F\u2028\u2029]*"


class FrozenModel(BaseModel):
    """Base of every event model: immutable, unknown fields rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def field_error(model: str, field: str, kind: str, message: str, value: Any) -> ValidationError:
    """A validation error located at ``field``; ``{value}`` in ``message`` shows ``value``.

    Raised from a validator, its location is kept (prefixed by the outer one),
    so the error points at the field, not at the model.
    """
    error = PydanticCustomError(kind, message, {"value": value})
    return ValidationError.from_exception_data(
        model, [InitErrorDetails(type=error, loc=(field,), input=value)]
    )


def pattern_check(pattern: str, kind: str, what: str, fold: bool = False) -> Callable[[Any], Any]:
    """A before-validator: a string not matching ``pattern`` (whole) is "'<value>' is not <what>".

    A readable message where the schema's own pattern error would show a regex;
    ``fold`` strips and upper-cases the input first.
    """
    regex = re.compile(pattern)

    def check(value: Any) -> Any:
        if not isinstance(value, str):
            return value  # the str schema reports the wrong type
        if fold:
            value = value.strip().upper()
        if not regex.fullmatch(value):
            raise PydanticCustomError(kind, "'{value}' is not " + what, {"value": value})
        return value

    return check


def at_least_one(what: str) -> AfterValidator:
    """Rejects an empty sequence, saying ``what`` it needs (pair with ``MIN_ONE`` for the schema).

    Unlike ``min_length``, it stays silent when an item is invalid: only that item's error shows.
    """

    def check(value: tuple[Any, ...]) -> tuple[Any, ...]:
        if not value:
            raise PydanticCustomError("too_short", "needs at least one " + what)
        return value

    return AfterValidator(check)


MIN_ONE: dict[str, Any] = {"minItems": 1}
"""JSON Schema of :func:`at_least_one`."""


def _timestamp(value: Any) -> Any:
    if isinstance(value, str | datetime):
        return value
    raise PydanticCustomError(
        "datetime_type", "Input should be an RFC 3339 date-time string with a timezone"
    )


Country = Annotated[
    str,
    StringConstraints(max_length=2, pattern=COUNTRY_PATTERN),
    BeforeValidator(
        pattern_check(COUNTRY_PATTERN, "country_code", "an ISO 3166 alpha-2 code", True)
    ),
]
"""ISO 3166 alpha-2 country code; lower case is accepted and upper-cased."""

UnitId = Annotated[
    str,
    StringConstraints(max_length=64, pattern=UNIT_PATTERN),
    BeforeValidator(
        pattern_check(UNIT_PATTERN, "unit_id", "a unit id (A-Z, 0-9 and '-', 2-64 characters)")
    ),
]
"""A unit's id, e.g. ``BLO-OYBEK``."""

REF_MAX = 256
"""The longest id (and reference) an agency may give."""

Ref = Annotated[
    str,
    StringConstraints(min_length=1, max_length=REF_MAX, pattern=REF_PATTERN),
    BeforeValidator(
        pattern_check(PRINTABLE, "reference", "a reference (it has control characters)")
    ),
]
"""An event id or a reference to one: 1-256 characters, no control characters.

Any other character is allowed — ``/``, ``%``, ``?``, ``#``, spaces, non-ASCII,
``..`` — because agencies' own record numbers become ids (``BT-2024/0091``);
in a URL path an id is one percent-encoded segment (docs/http-api.md, "Alert ids in paths").
"""

SYSTEM_ID_MAX = 512
"""The longest id of an event the system emits: its ids embed an alert's id, its origin and
a unit (``acknowledged/<origin>/<alert id>/<unit>``), so they outgrow :data:`REF_MAX`."""


class AlertRef(NamedTuple):
    """Which alert: the unit that raised it and the id it gave it.

    Event ids are unique per source only (CloudEvents: ``(source, id)``
    identifies an event), so two units' alerts may share an id and are still
    two alerts. A change (``alert.updated``/``cancelled``/``closed``) names
    its alert by ``subject`` and is always about an alert of its own source:
    only the unit that raised an alert may change it.
    """

    origin: str
    """The id of the unit that raised the alert (``BLO-OYBEK``)."""
    id: str
    """The alert's id (the ``alert.raised`` event's id)."""

    @property
    def source(self) -> str:
        """The CloudEvents source of the alert: ``/units/<origin>``."""
        return f"/units/{self.origin}"

    def __str__(self) -> str:
        return f"alert {self.id!r} of {self.origin}"


Text = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=MAX_TEXT, pattern=NOTE_PATTERN
    ),
    BeforeValidator(crlf_to_lf),  # last: it wraps the constrained str, whose checks stay native
]
"""Free text over lines (a note, a reason), stripped, 1-2000 characters: line breaks and
tabs, no other control character."""

Line = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=MAX_TEXT, pattern=ONE_LINE_PATTERN
    ),
]
"""One line of free text (a summary), stripped, 1-2000 characters, no control character."""

Name = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=MAX_NAME, pattern=ONE_LINE_PATTERN
    ),
]
"""A short label (a name, a document number, a plate), stripped, 1-200 characters, one line."""

Timestamp = Annotated[AwareDatetime, BeforeValidator(_timestamp)]
"""An RFC 3339 date-time with a timezone (never a bare number, never naive)."""


class Person(FrozenModel):
    """A person to look out for or detained: personal data, shown only where releasable."""

    name: Name = Field(description="Full name as written in the document.")
    nationality: Country | None = Field(None, description="Nationality, ISO 3166 alpha-2.")
    document: Name | None = Field(None, description="Passport or identity document number.")


class Vehicle(FrozenModel):
    """A vehicle to look out for."""

    plate: Name = Field(description="Registration plate as written, e.g. '01 TJ 000 AA'.")
    description: Text | None = Field(None, description="Make, colour, load, markings.")


class Window(FrozenModel):
    """When the consignment is expected; serialised as ``{"from", "until"}``."""

    model_config = ConfigDict(
        validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    from_: Timestamp = Field(alias="from", description="Start of the expected window.")
    until: Timestamp = Field(description="End of the expected window; after 'from'.")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.until <= self.from_:
            raise field_error(
                "Window", "until", "window_order", "until must be after from", self.until
            )
        return self


def check_persons_count(model: str, persons: object, persons_count: int | None) -> None:
    """``persons_count`` stands in for ``persons`` in the non-nominal view: never both."""
    if persons is not None and persons_count is not None:
        raise field_error(
            model,
            "persons_count",
            "persons_count_conflict",
            "persons_count replaces persons in the non-nominal view; give one, not both",
            persons_count,
        )


_DOC = {
    "severity": "How urgently recipients must acknowledge: flash, urgent or routine.",
    "summary": "What is happening, for the duty officer: one line (1-2000 characters).",
    "route": "Ordered country codes of the expected route, e.g. ['TJ', 'UZ', 'KZ'].",
    "recipients": "Units that must receive the alert in addition to the computed ones.",
    "persons": "Persons to look out for: personal data, removed in the non-nominal view.",
    "persons_count": "How many persons were withheld; set only in the non-nominal view.",
    "vehicles": "Vehicles to look out for.",
    "consignment": "The suspected consignment: substance, amount, packaging, concealment.",
    "window": "When the consignment is expected.",
    "expires_at": "When the alert lapses if nobody updates it.",
}


MAX_ALERT_BYTES = 64 * 1024
"""The most an alert event (``alert.raised``, ``updated``, ``cancelled``, ``closed``) may be
as canonical JSON (UTF-8 bytes), checked at ingest: the notifier keeps every alert for
its recipients' inboxes, so an alert stays well below the 8 MiB a batch may carry."""


class AlertRaised(FrozenModel):
    """``alert.raised``: a unit asks its neighbours to look out for a consignment."""

    severity: Severity = Field(description=_DOC["severity"])
    summary: Line = Field(description=_DOC["summary"])
    route: Annotated[tuple[Country, ...], at_most(MAX_ROUTE)] = Field(
        (), max_length=MAX_ROUTE, description=_DOC["route"]
    )
    recipients: Annotated[tuple[UnitId, ...], at_most(MAX_RECIPIENTS)] = Field(
        (), max_length=MAX_RECIPIENTS, description=_DOC["recipients"]
    )
    persons: Annotated[tuple[Person, ...] | None, at_most(MAX_PERSONS)] = Field(
        None, max_length=MAX_PERSONS, description=_DOC["persons"]
    )
    persons_count: int | None = Field(None, ge=0, le=MAX_COUNT, description=_DOC["persons_count"])
    vehicles: Annotated[tuple[Vehicle, ...], at_most(MAX_VEHICLES)] = Field(
        (), max_length=MAX_VEHICLES, description=_DOC["vehicles"]
    )
    consignment: Text | None = Field(None, description=_DOC["consignment"])
    window: Window | None = Field(None, description=_DOC["window"])
    expires_at: Timestamp | None = Field(None, description=_DOC["expires_at"])

    @model_validator(mode="after")
    def _one_view(self) -> Self:
        check_persons_count("AlertRaised", self.persons, self.persons_count)
        return self


class AlertUpdated(FrozenModel):
    """``alert.updated``: the changed fields of the alert named by ``subject`` (at least one)."""

    severity: Severity | None = Field(None, description=_DOC["severity"])
    summary: Line | None = Field(None, description=_DOC["summary"])
    route: Annotated[tuple[Country, ...] | None, at_most(MAX_ROUTE)] = Field(
        None, max_length=MAX_ROUTE, description=_DOC["route"]
    )
    recipients: Annotated[tuple[UnitId, ...] | None, at_most(MAX_RECIPIENTS)] = Field(
        None, max_length=MAX_RECIPIENTS, description=_DOC["recipients"]
    )
    persons: Annotated[tuple[Person, ...] | None, at_most(MAX_PERSONS)] = Field(
        None, max_length=MAX_PERSONS, description=_DOC["persons"]
    )
    persons_count: int | None = Field(None, ge=0, le=MAX_COUNT, description=_DOC["persons_count"])
    vehicles: Annotated[tuple[Vehicle, ...] | None, at_most(MAX_VEHICLES)] = Field(
        None, max_length=MAX_VEHICLES, description=_DOC["vehicles"]
    )
    consignment: Text | None = Field(None, description=_DOC["consignment"])
    window: Window | None = Field(None, description=_DOC["window"])
    expires_at: Timestamp | None = Field(None, description=_DOC["expires_at"])

    @model_validator(mode="after")
    def _something_changed(self) -> Self:
        if all(getattr(self, name) is None for name in type(self).model_fields):
            raise ValueError("alert.updated must carry at least one changed field")
        check_persons_count("AlertUpdated", self.persons, self.persons_count)
        return self


class _AlertEnd(FrozenModel):
    """What ends an alert: why, and the seizure that did, if any."""

    reason: Text = Field(description="Why the alert ends (1-2000 characters).")
    seizure_id: Ref | None = Field(
        None, description="Id of the seizure.reported event that ended it, if any."
    )


class AlertCancelled(_AlertEnd):
    """``alert.cancelled``: the alert named by ``subject`` was withdrawn."""


class AlertClosed(_AlertEnd):
    """``alert.closed``: the alert named by ``subject`` is over, e.g. the consignment was seized."""
