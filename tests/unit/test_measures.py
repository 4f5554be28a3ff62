"""Units of measure: agencies write g, mg, t, ml, tablets…; events carry kg, l or units."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.measures import ACCEPTED, CANONICAL, MEASURES, normalise
from schemas.seizures import Drug


@pytest.mark.parametrize(
    ("quantity", "measure", "expected"),
    [
        (20032, "g", (20.032, "kg")),
        (20.5, "kg", (20.5, "kg")),
        (250, "mg", (0.00025, "kg")),
        (1, "mg", (0.000001, "kg")),
        (0.1, "g", (0.0001, "kg")),
        (1.5, "t", (1500.0, "kg")),
        (2, "tonnes", (2000.0, "kg")),
        (3, "l", (3.0, "l")),
        (500, "ml", (0.5, "l")),
        (1234, "ml", (1.234, "l")),
        (100, "tablets", (100.0, "units")),
        (1, "tablet", (1.0, "units")),
        (7, "pieces", (7.0, "units")),
        (7, "pcs", (7.0, "units")),
        (7, "unit", (7.0, "units")),
        (20032, " G ", (20.032, "kg")),
        (5, "ML", (0.005, "l")),
        (2, "Kilograms", (2.0, "kg")),
    ],
)
def test_normalise(quantity: float, measure: str, expected: tuple[float, str]) -> None:
    assert normalise(quantity, measure) == expected


def test_normalise_has_no_float_noise() -> None:
    assert 9 * 0.001 != 0.009  # what naive scaling would store
    assert normalise(9, "g") == (0.009, "kg")
    for grams in range(1, 100_000, 997):
        kilos, _ = normalise(grams, "g")
        assert repr(kilos) == repr(grams / 1000)


@pytest.mark.parametrize("measure", ["lbs", "kilo", "", "oz", "gallons"])
def test_unknown_measure_names_the_accepted_ones(measure: str) -> None:
    with pytest.raises(ValueError, match="unknown measure") as caught:
        normalise(1, measure)
    for listed in ("kg", "g", "mg", "t", "l", "ml", "units", "tablets", "pieces"):
        assert listed in str(caught.value)


@pytest.mark.parametrize("quantity", [math.inf, -math.inf, math.nan])
def test_normalise_refuses_non_finite_quantities(quantity: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        normalise(quantity, "g")


def test_every_measure_maps_to_a_canonical_one() -> None:
    assert {canonical for canonical, _ in MEASURES.values()} == set(CANONICAL)
    assert set(ACCEPTED) == set(MEASURES)
    assert all(name == name.lower().strip() for name in ACCEPTED)
    for measure in CANONICAL:
        assert normalise(1, measure) == (1.0, measure)


def drug(**fields: Any) -> Drug:
    return Drug.model_validate({"substance": "heroin", "quantity": 1, "measure": "kg", **fields})


def test_drug_in_grams_is_stored_in_kilograms_keeping_the_report() -> None:
    d = drug(quantity=20032, measure="g")
    assert (d.quantity, d.measure) == (20.032, "kg")
    assert (d.reported_quantity, d.reported_measure) == (20032, "g")


def test_drug_in_tablets_is_stored_in_units_keeping_the_word() -> None:
    d = drug(quantity=5000, measure="Tablets")
    assert (d.quantity, d.measure, d.reported_quantity, d.reported_measure) == (
        5000,
        "units",
        5000,
        "Tablets",
    )


def test_drug_in_a_canonical_measure_has_no_report() -> None:
    d = drug(quantity=3, measure=" KG ")
    assert (d.quantity, d.measure, d.reported_quantity, d.reported_measure) == (3, "kg", None, None)


@pytest.mark.parametrize("measure", ["g", "ml", "tablets", "t"])
def test_normalised_drug_round_trips(measure: str) -> None:
    d = drug(quantity=1500, measure=measure)
    assert Drug.model_validate(d.model_dump()) == d
    assert Drug.model_validate_json(d.model_dump_json()) == d


def test_substance_is_stripped_and_lower_cased() -> None:
    assert drug(substance="  Heroin ").substance == "heroin"


def test_unknown_measure_is_located_at_measure() -> None:
    with pytest.raises(ValidationError) as caught:
        drug(measure="lbs")
    (error,) = caught.value.errors()
    assert error["loc"] == ("measure",)
    assert "unknown measure 'lbs'" in error["msg"]
    assert "kg" in error["msg"]


@pytest.mark.parametrize("quantity", [0, -20032, "20032", None, True, math.inf, math.nan])
def test_bad_quantity_is_located_at_quantity_with_the_agencys_figure(quantity: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        drug(quantity=quantity, measure="g")
    (error,) = caught.value.errors()
    assert error["loc"] == ("quantity",)
    if not isinstance(quantity, float):
        assert error["input"] == quantity


def test_reported_figures_are_the_normalisers_to_set() -> None:
    with pytest.raises(ValidationError) as caught:
        drug(quantity=5, measure="g", reported_quantity=5, reported_measure="g")
    assert [e["loc"] for e in caught.value.errors()] == [("reported_measure",)]


def test_reported_figures_go_together() -> None:
    with pytest.raises(ValidationError, match="go together"):
        drug(quantity=5, measure="kg", reported_quantity=5000)
