"""Seizure data (``seizure.reported``): what was seized, where, by whom, along which route."""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import BeforeValidator, Field, StringConstraints, model_validator

from schemas.alerts import (
    MIN_ONE,
    Country,
    FrozenModel,
    Name,
    Person,
    Ref,
    Text,
    Timestamp,
    UnitId,
    at_least_one,
    check_persons_count,
    field_error,
    pattern_check,
)
from schemas.limits import (
    MAX_AGENCIES,
    MAX_COUNT,
    MAX_DRUGS,
    MAX_NAME,
    MAX_PERSONS,
    MAX_ROUTE,
    ONE_LINE_PATTERN,
    at_most,
)
from schemas.measures import MEASURES, MEASURES_HELP, Measure, normalise

AGENCY_PATTERN = r"^[A-Z][A-Z0-9-]{0,31}$"

Substance = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        to_lower=True,
        min_length=1,
        max_length=MAX_NAME,
        pattern=ONE_LINE_PATTERN,
    ),
]
"""A substance name, stripped and lower-cased (``Heroin`` → ``heroin``)."""

Agency = Annotated[
    str,
    StringConstraints(max_length=32, pattern=AGENCY_PATTERN),
    BeforeValidator(
        pattern_check(AGENCY_PATTERN, "agency", "an agency code such as MIA, SSS or SCC", True)
    ),
]
"""An agency's short code, upper-cased: MIA, SSS, SCC, BORDER-TROOPS…"""

Quantity = Annotated[float, Field(gt=0, allow_inf_nan=False, strict=True)]
"""A positive, finite number (a JSON number, never a string)."""


class Drug(FrozenModel):
    """One substance seized, in the canonical measure (kg, l or units).

    Input in another measure (g, mg, t, ml, tablets, pieces…, any case) is
    converted; the agency's own figures are kept in ``reported_quantity`` and
    ``reported_measure``.
    """

    substance: Substance = Field(description="Substance, lower-case, e.g. heroin, hashish.")
    quantity: Quantity = Field(description="Quantity in the canonical measure, e.g. 20.032.")
    measure: Measure = Field(
        description="kg, l or units. Input may also give " + MEASURES_HELP + ", converted."
    )
    reported_quantity: Quantity | None = Field(
        None, description="The quantity as the agency reported it, when it was converted."
    )
    reported_measure: Name | None = Field(
        None, description="The measure as the agency reported it, when it was converted."
    )

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, value: Any) -> Any:
        if not isinstance(value, dict) or not isinstance(value.get("measure"), str):
            return value  # the field validators report what is wrong
        written = value["measure"].strip()
        if written.lower() not in MEASURES:
            message = "unknown measure '{value}': use " + MEASURES_HELP
            raise field_error("Drug", "measure", "measure", message, written)
        canonical = MEASURES[written.lower()][0]
        if written.lower() == canonical:
            return {**value, "measure": canonical}
        if value.get("reported_quantity") is not None or value.get("reported_measure") is not None:
            raise field_error(
                "Drug",
                "reported_measure",
                "reported_measure",
                "reported_quantity and reported_measure are set when a measure is converted;"
                " give them only with measure kg, l or units, not '{value}'",
                written,
            )
        quantity: Any = value.get("quantity")
        try:
            scaled, _ = normalise(quantity, written)
        except ValueError:
            scaled = 0.0
        if scaled <= 0:  # the quantity field reports the agency's own figure
            return {**value, "measure": canonical}
        return {
            **value,
            "quantity": scaled,
            "measure": canonical,
            "reported_quantity": quantity,
            "reported_measure": written,
        }

    @model_validator(mode="after")
    def _reported_together(self) -> Self:
        if (self.reported_quantity is None) != (self.reported_measure is None):
            raise ValueError("reported_quantity and reported_measure go together")
        return self


class Location(FrozenModel):
    """Where a seizure happened: a unit's area, a region, a border-crossing point, a point."""

    unit: UnitId | None = Field(None, description="Unit whose area it is, e.g. IMT-GULISTAN.")
    region: Name | None = Field(None, description="Region, e.g. Syrdarya.")
    bcp: Name | None = Field(None, description="Border-crossing point, e.g. Oybek.")
    lat: float | None = Field(None, ge=-90, le=90, description="Latitude, WGS 84 degrees.")
    lon: float | None = Field(None, ge=-180, le=180, description="Longitude, WGS 84 degrees.")

    @model_validator(mode="after")
    def _point(self) -> Self:
        if (self.lat is None) != (self.lon is None):
            missing = "lon" if self.lon is None else "lat"
            raise field_error("Location", missing, "coordinates", "lat and lon go together", None)
        return self


class SeizureReported(FrozenModel):
    """``seizure.reported``: drugs seized by a unit, with where, by whom and along which route."""

    occurred_at: Timestamp = Field(description="When the seizure happened (RFC 3339).")
    drugs: Annotated[tuple[Drug, ...], at_most(MAX_DRUGS), at_least_one("drug")] = Field(
        json_schema_extra=MIN_ONE,
        max_length=MAX_DRUGS,
        description="What was seized (at least one).",
    )
    agencies: Annotated[tuple[Agency, ...], at_most(MAX_AGENCIES)] = Field(
        (),
        max_length=MAX_AGENCIES,
        description="Agencies involved, short codes: MIA, SSS, SCC, BORDER-TROOPS…",
    )
    location: Location | None = Field(None, description="Where it happened.")
    route: Annotated[tuple[Country, ...], at_most(MAX_ROUTE)] = Field(
        (),
        max_length=MAX_ROUTE,
        description="Ordered country codes: origin, transit countries, destination.",
    )
    transport: Name | None = Field(None, description="Transport mode, e.g. truck, rail, on foot.")
    concealment: Text | None = Field(None, description="Concealment method.")
    detained: int | None = Field(
        None, ge=0, le=MAX_COUNT, description="How many persons were detained."
    )
    persons: Annotated[tuple[Person, ...] | None, at_most(MAX_PERSONS)] = Field(
        None,
        max_length=MAX_PERSONS,
        description="Persons detained: personal data, removed in the non-nominal view.",
    )
    persons_count: int | None = Field(
        None,
        ge=0,
        le=MAX_COUNT,
        description="How many persons were withheld; set only in the non-nominal view.",
    )
    alert_id: Ref | None = Field(None, description="Id of the alert.raised event that led to it.")
    case: Ref | None = Field(
        None,
        description="The seizure's own reference, shared by every agency's report of it (e.g. "
        "the criminal case number, '12-3456/2024'): reports with the same case describe one "
        "seizure, and statistics count it once.",
    )

    @model_validator(mode="after")
    def _one_view(self) -> Self:
        check_persons_count("SeizureReported", self.persons, self.persons_count)
        return self
