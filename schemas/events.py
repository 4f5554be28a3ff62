"""The CloudEvents 1.0 envelope (structured JSON) with Liaison Exchange's extensions.

``data`` is validated by the model of the event's ``type`` (:data:`DATA_MODELS`),
so ``event.data`` is always that typed model and a data error is located under
``data``, e.g. ``("data", "drugs", 0, "quantity")``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Final, Literal, Self, TypeAlias

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from schemas.alerts import (
    COUNTRY_PATTERN,
    PRINTABLE,
    REF_MAX,
    REF_PATTERN,
    SYSTEM_ID_MAX,
    AlertCancelled,
    AlertClosed,
    AlertRaised,
    AlertRef,
    AlertUpdated,
    Ref,
    Timestamp,
    field_error,
    pattern_check,
)
from schemas.keys import KeyRegistered, KeyRevoked
from schemas.limits import MAX_COUNTRY_LIST, MAX_URI, ONE_LINE_PATTERN
from schemas.operations import OperationClosed, OperationName, OperationOpened
from schemas.receipts import (
    AlertAcknowledged,
    AlertDelivered,
    AlertEscalated,
    AlertWebhookFailed,
)
from schemas.seizures import SeizureReported
from schemas.vocabulary import SYSTEM_TYPES, EventType, Tlp

UNIT_SOURCE_PATTERN = r"^/units/[A-Z0-9][A-Z0-9-]{1,63}$"
"""Source of an agency event: ``/units/<UNIT-ID>``."""
SYSTEM_SOURCE_PATTERN = r"^/liaison/[a-z][a-z0-9-]{0,63}$"
"""Source of an event Liaison Exchange emits: ``/liaison/<component>``."""
SOURCE_PATTERN = r"^(/units/[A-Z0-9][A-Z0-9-]{1,63}|/liaison/[a-z][a-z0-9-]{0,63})$"
COUNTRY_LIST_PATTERN = r"^[A-Z]{2}(,[A-Z]{2})*$"

EventData: TypeAlias = (
    SeizureReported
    | AlertRaised
    | AlertUpdated
    | AlertCancelled
    | AlertClosed
    | AlertDelivered
    | AlertAcknowledged
    | AlertEscalated
    | AlertWebhookFailed
    | KeyRegistered
    | KeyRevoked
    | OperationOpened
    | OperationClosed
)
"""The data of any event; which one is set by the event's ``type``."""

DATA_MODELS: Final[dict[EventType, type[EventData]]] = {
    EventType.SEIZURE_REPORTED: SeizureReported,
    EventType.ALERT_RAISED: AlertRaised,
    EventType.ALERT_UPDATED: AlertUpdated,
    EventType.ALERT_CANCELLED: AlertCancelled,
    EventType.ALERT_CLOSED: AlertClosed,
    EventType.ALERT_DELIVERED: AlertDelivered,
    EventType.ALERT_ACKNOWLEDGED: AlertAcknowledged,
    EventType.ALERT_ESCALATED: AlertEscalated,
    EventType.ALERT_WEBHOOK_FAILED: AlertWebhookFailed,
    EventType.KEY_REGISTERED: KeyRegistered,
    EventType.KEY_REVOKED: KeyRevoked,
    EventType.OPERATION_OPENED: OperationOpened,
    EventType.OPERATION_CLOSED: OperationClosed,
}
"""The data model of each event type."""

NEEDS_SUBJECT: Final = frozenset(
    {EventType.ALERT_UPDATED, EventType.ALERT_CANCELLED, EventType.ALERT_CLOSED}
)
"""Types whose ``subject`` (the original alert's id) is required."""

_UNITS, _SYSTEM = "/units/", "/liaison/"
# One encoder for every event: json.dumps(sort_keys=True, separators=(",", ":"),
# ensure_ascii=False) builds a new one per call; the text is the same, byte for byte
# (tests/unit/test_canonical_text.py). A model dump holds no cycles to check for.
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, check_circular=False
)
_country_code = pattern_check(COUNTRY_PATTERN, "country_code", "an ISO 3166 alpha-2 code", True)


def parse_countries(value: str) -> tuple[str, ...]:
    """``" uz, tj,UZ"`` → ``("UZ", "TJ")``: upper-cased, stripped, de-duplicated, order kept."""
    codes = [_country_code(part) for part in value.split(",")]
    if not codes or codes == [""]:
        raise PydanticCustomError("country_list", "name at least one country, e.g. 'UZ,TJ'")
    return tuple(dict.fromkeys(codes))


def _country_list(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if len(value) > MAX_COUNTRY_LIST:  # before splitting it: that costs per part
        raise PydanticCustomError(
            "too_long",
            "at most {max} characters: each country once, e.g. 'UZ,TJ'",
            {"max": MAX_COUNTRY_LIST},
        )
    return ",".join(parse_countries(value))


EventId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=SYSTEM_ID_MAX, pattern=REF_PATTERN),
    BeforeValidator(
        pattern_check(PRINTABLE, "reference", "a reference (it has control characters)")
    ),
]
"""An event id: no control characters, 1-256 characters from an agency (:data:`REF_MAX`),
up to 512 from the system (:data:`SYSTEM_ID_MAX`), whose ids embed an alert's."""

Dsse = Annotated[str, StringConstraints(max_length=8192, pattern=r"^[A-Za-z0-9+/]+={0,2}$")]
"""A ``dssematerial``: Base64 of a DSSE JSON envelope."""
Disclosures = Annotated[str, StringConstraints(max_length=262_144, pattern=r"^[A-Za-z0-9_~-]*$")]
"""Base64url parts joined by ``~``."""

CountryList = Annotated[
    str,
    StringConstraints(max_length=MAX_COUNTRY_LIST, pattern=COUNTRY_LIST_PATTERN),
    BeforeValidator(_country_list),
]
"""Wire form of a set of countries: ``"UZ,TJ"``."""


class CloudEvent(BaseModel):
    """A CloudEvent 1.0 in structured JSON, with the ``tlp``, ``releasableto`` and
    ``piireleasableto`` extension attributes; ``data`` is the model of ``type``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    specversion: Literal["1.0"] = Field(description="CloudEvents version: always '1.0'.")
    id: EventId = Field(
        description="Unique per source; (source, id) identifies the event. Agencies' ids are "
        "1-256 characters, any but control characters."
    )
    source: str = Field(
        max_length=80,
        pattern=SOURCE_PATTERN,
        description="'/units/<UNIT-ID>' for agency events, '/liaison/<component>' for the system's.",
    )
    type: EventType = Field(description="The kind of event; it chooses the model of data.")
    time: Timestamp = Field(description="When it happened: RFC 3339 with a timezone.")
    subject: Ref | None = Field(
        None,
        validate_default=True,
        description="Case or alert reference; for alert.updated, alert.cancelled and "
        "alert.closed (where it is required) the id of the original alert, which is an alert "
        "of the change's own source: an alert is identified by (source, id), and only the unit "
        "that raised it may change it.",
    )
    datacontenttype: Literal["application/json"] = Field(
        "application/json", description="Media type of data: always application/json."
    )
    dataschema: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_URI,
        pattern=ONE_LINE_PATTERN,
        description="URI of the JSON Schema of data.",
    )
    tlp: Tlp = Field(Tlp.AMBER, description="Traffic Light Protocol 2.0 label; amber by default.")
    releasableto: CountryList | None = Field(
        None,
        description="Comma-separated ISO 3166 alpha-2 codes of the countries the event may "
        "reach, e.g. 'UZ,TJ'; absent: the originator's own country only.",
    )
    piireleasableto: CountryList | None = Field(
        None,
        description="Comma-separated ISO 3166 alpha-2 codes of the countries that may see "
        "personal data (persons' identities); absent: none abroad.",
    )
    dssematerial: Dsse | None = Field(
        None,
        description="The publisher's signature: the CloudEvents Verifiability extension's DSSE "
        "envelope, Base64 (docs/provenance.md).",
    )
    piidisclosures: Disclosures | None = Field(
        None,
        description="With a signed event's persons: their salted disclosures (RFC 9901), "
        "'~'-separated, one per person in order; dropped with the persons in the non-nominal "
        "view.",
    )
    piidigests: Disclosures | None = Field(
        None,
        description="In the non-nominal view of a signed event: the signed digests of the "
        "withheld persons, '~'-separated, so that the copy still verifies.",
    )
    operation: OperationName | None = Field(
        None,
        description="The operation (closed group, opened by operation.opened) an alert or a "
        "seizure belongs to: an alert goes to the operation's members only, within every "
        "other handling code; absent: no operation.",
    )
    data: EventData = Field(description="The payload: the data model of the event's type.")

    @field_validator("tlp", mode="before")
    @classmethod
    def _tlp_label(cls, value: Any) -> Any:
        if isinstance(value, str):  # also "TLP:AMBER", as TLP 2.0 writes it
            return value.strip().lower().removeprefix("tlp:")
        return value

    @field_validator("type")
    @classmethod
    def _source_fits_type(cls, value: EventType, info: ValidationInfo) -> EventType:
        source = info.data.get("source")
        if source is None:
            return value  # the source's own error is reported
        if value in SYSTEM_TYPES and not source.startswith(_SYSTEM):
            message = "{type} is emitted by Liaison Exchange only: its source is /liaison/<component>, not {source}"
        elif value not in SYSTEM_TYPES and not source.startswith(_UNITS):
            message = (
                "{type} is published by agencies: its source is /units/<UNIT-ID>, not {source}"
            )
        else:
            return value
        raise PydanticCustomError("source_type", message, {"type": str(value), "source": source})

    @field_validator("subject")
    @classmethod
    def _subject_when_needed(cls, value: str | None, info: ValidationInfo) -> str | None:
        event_type = info.data.get("type")
        if value is None and event_type in NEEDS_SUBJECT:
            raise PydanticCustomError(
                "subject_required",
                "{type} needs subject: the id of the alert it changes",
                {"type": str(event_type)},
            )
        return value

    @field_validator("data", mode="wrap")
    @classmethod
    def _typed_data(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Any:
        event_type = info.data.get("type")
        if event_type is None:
            return value  # the type's own error is reported; data cannot be checked without it
        model = DATA_MODELS[event_type]
        if type(value) is model:
            return value
        # Errors raised here keep their location, prefixed with "data" by pydantic. The
        # model's own validator, as model_validate would call it, without its Python wrapper.
        return model.__pydantic_validator__.validate_python(value, context=info.context)

    @model_validator(mode="after")
    def _agency_id_length(self) -> Self:
        if self.unit is not None and len(self.id) > REF_MAX:
            message = f"String should have at most {REF_MAX} characters"
            raise field_error("CloudEvent", "id", "string_too_long", message, self.id)
        return self

    @property
    def unit(self) -> str | None:
        """The originating unit's id (``/units/<UNIT-ID>``); None for the system's own events."""
        return self.source.removeprefix(_UNITS) if self.source.startswith(_UNITS) else None

    @property
    def alert_ref(self) -> AlertRef | None:
        """The alert an agency's alert event is about: for ``alert.raised`` itself, for a
        change the alert named by ``subject`` of the change's own source (only the unit that
        raised an alert may change it). None for other events."""
        return alert_ref_of(self.type, self.source, self.id, self.subject)

    @property
    def releasable_countries(self) -> frozenset[str] | None:
        """``releasableto`` as a set of country codes; None when absent."""
        return None if self.releasableto is None else frozenset(self.releasableto.split(","))

    @property
    def pii_countries(self) -> frozenset[str] | None:
        """``piireleasableto`` as a set of country codes; None when absent."""
        return None if self.piireleasableto is None else frozenset(self.piireleasableto.split(","))

    def to_json(self) -> bytes:
        """Canonical wire JSON, UTF-8: compact, keys sorted, absent (None) attributes
        left out, aliases used (``window.from``), datetimes in RFC 3339.

        The ledger stores this text verbatim and hashes it, so it is defined
        once, here (``services/ledger/chain.py`` documents it for auditors).
        """
        return canonical_json(self.model_dump(mode="json", by_alias=True, exclude_none=True))

    @classmethod
    def from_json(cls, raw: bytes | str) -> Self:
        """Parse and validate wire JSON; pydantic ``ValidationError`` when it is not valid."""
        return cls.model_validate_json(raw)


def alert_ref_of(
    event_type: EventType, source: str, event_id: str, subject: str | None
) -> AlertRef | None:
    """:attr:`CloudEvent.alert_ref` from an event's attributes (of an event already valid)."""
    if not source.startswith(_UNITS):
        return None
    unit = source.removeprefix(_UNITS)
    if event_type is EventType.ALERT_RAISED:
        return AlertRef(unit, event_id)
    if event_type in NEEDS_SUBJECT and subject is not None:
        return AlertRef(unit, subject)
    return None


def canonical_json(doc: dict[str, Any]) -> bytes:
    """The canonical text of an event already dumped to JSON types (:meth:`CloudEvent.to_json`)."""
    return _CANONICAL.encode(doc).encode()
