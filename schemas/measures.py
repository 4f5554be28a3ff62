"""Units of measure: what agencies write, and the canonical ``kg``, ``l`` and ``units``.

Quantities are scaled in decimal arithmetic on the number as written, so
``normalise(20032, "g")`` is exactly ``(20.032, "kg")``, with no float noise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Literal

Measure = Literal["kg", "l", "units"]
"""A canonical measure: mass in kilograms, volume in litres, countable items in units."""

CANONICAL: tuple[Measure, ...] = ("kg", "l", "units")

_MILLI, _MICRO, _ONE, _KILO = Decimal("0.001"), Decimal("0.000001"), Decimal(1), Decimal(1000)

MEASURES: Mapping[str, tuple[Measure, Decimal]] = MappingProxyType(
    {
        "kg": ("kg", _ONE),
        "kilogram": ("kg", _ONE),
        "kilograms": ("kg", _ONE),
        "g": ("kg", _MILLI),
        "gram": ("kg", _MILLI),
        "grams": ("kg", _MILLI),
        "mg": ("kg", _MICRO),
        "milligram": ("kg", _MICRO),
        "milligrams": ("kg", _MICRO),
        "t": ("kg", _KILO),
        "tonne": ("kg", _KILO),
        "tonnes": ("kg", _KILO),
        "l": ("l", _ONE),
        "litre": ("l", _ONE),
        "litres": ("l", _ONE),
        "liter": ("l", _ONE),
        "liters": ("l", _ONE),
        "ml": ("l", _MILLI),
        "millilitre": ("l", _MILLI),
        "millilitres": ("l", _MILLI),
        "milliliter": ("l", _MILLI),
        "milliliters": ("l", _MILLI),
        "units": ("units", _ONE),
        "unit": ("units", _ONE),
        "tablets": ("units", _ONE),
        "tablet": ("units", _ONE),
        "pieces": ("units", _ONE),
        "piece": ("units", _ONE),
        "pcs": ("units", _ONE),
    }
)
"""Accepted measure (lower case) → (canonical measure, factor to it)."""

ACCEPTED: tuple[str, ...] = tuple(MEASURES)
"""Every measure an agency may write (case-insensitive)."""

MEASURES_HELP = (
    "a mass in kg, g, mg or t (tonnes), a volume in l or ml, "
    "or a count in units, tablets or pieces (pcs)"
)
"""The accepted measures, for error messages (spelled-out forms are accepted too)."""


def canonical_measure(measure: str) -> Measure:
    """The canonical measure of ``measure`` (case-insensitive), or ValueError naming the options."""
    entry = MEASURES.get(measure.strip().lower())
    if entry is None:
        raise ValueError(f"unknown measure {measure!r}: use {MEASURES_HELP}")
    return entry[0]


def normalise(quantity: float, measure: str) -> tuple[float, str]:
    """``(quantity, measure)`` in the canonical measure: ``(20032, "g")`` → ``(20.032, "kg")``.

    Raises ValueError, with a message naming the accepted measures, for an
    unknown measure, and for a quantity that is not a finite number.
    """
    canonical = canonical_measure(measure)
    if isinstance(quantity, bool) or not isinstance(quantity, int | float):
        raise ValueError(f"quantity must be a number, not {type(quantity).__name__}")
    if not math.isfinite(quantity):
        raise ValueError(f"quantity must be a finite number, not {quantity!r}")
    factor = MEASURES[measure.strip().lower()][1]
    if factor == _ONE:
        return float(quantity), canonical
    return float(Decimal(repr(quantity)) * factor), canonical
