"""The topology: which units exist, who neighbours whom, who faces whom across a border.

It is data, not code (docs/architecture.md, "Units"): the default ships as ``schemas/topology.yaml`` and a
deployment may replace it. Everything is checked once, at load time, so that routing can
trust it; a bad file gives a :class:`TopologyError` naming the file and the problem.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from enum import StrEnum
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.vocabulary import UNIT_PATTERN

DEFAULT_ORIGIN = "schemas/topology.yaml"


def _matching(pattern: str, what: str) -> AfterValidator:
    regex = re.compile(pattern)

    def check(value: str) -> str:
        if not regex.fullmatch(value):
            raise ValueError(f"{value!r} is not {what}")
        return value

    return AfterValidator(check)


CountryCode = Annotated[
    str, _matching("[A-Z]{2}", "an ISO 3166 alpha-2 code (two capital letters)")
]
# The same rule as in events: a topology unit must be able to publish and be named in alerts.
UnitId = Annotated[
    str, _matching(UNIT_PATTERN[1:-1], "a unit id (A-Z, 0-9 and '-', 2-64 characters)")
]


class TopologyError(ValueError):
    """The topology is unusable; the message names the file and what is wrong."""


class UnknownUnitError(TopologyError):
    """A unit id that the topology does not know."""


class UnitKind(StrEnum):
    """What a unit is."""

    COORDINATOR = "coordinator"
    IMT = "imt"
    BLO = "blo"


class Unit(BaseModel):
    """One unit: a coordinator, an Interagency Mobile Team or a Border Liaison Office."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: UnitId
    kind: UnitKind
    country: CountryCode
    name: str = Field(min_length=1)
    borders: frozenset[CountryCode] = frozenset()
    """Countries the unit's area borders; for a BLO, the one country it faces."""
    counterpart: UnitId | None = None
    """The BLO across the border; the link is symmetric, so one side may declare it."""
    notes: str | None = None
    lat: float | None = Field(default=None, ge=-90, le=90)
    """Latitude of the unit (town level, for the console's schematic map); optional."""
    lon: float | None = Field(default=None, ge=-180, le=180)
    """Longitude, with ``lat``."""
    timezone: str | None = None
    """IANA time zone of the unit (``Asia/Tashkent``): its officers' local time."""

    @model_validator(mode="after")
    def _consistent(self) -> Unit:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("lat and lon go together: give both or neither")
        if self.timezone is not None:
            try:
                ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"{self.timezone!r} is not an IANA time zone") from None
        if self.country in self.borders:
            raise ValueError(f"borders lists the unit's own country {self.country}")
        if self.kind is UnitKind.BLO and len(self.borders) != 1:
            raise ValueError("a BLO faces exactly one country: borders must list one code")
        if self.counterpart is not None and self.kind is not UnitKind.BLO:
            raise ValueError(f"only a BLO has a counterpart, and this is a {self.kind}")
        return self


class Topology:
    """Validated units with their neighbour links (inside a country) and counterparts (across)."""

    def __init__(
        self,
        units: Iterable[Unit],
        links: Iterable[tuple[str, str]] = (),
        origin: str = "<topology>",
    ) -> None:
        self.origin = origin
        by_id: dict[str, Unit] = {}
        for n, unit in enumerate(units, 1):
            if unit.id in by_id:
                raise self._error(f"unit {n}: duplicate id {unit.id!r}")
            by_id[unit.id] = unit
        self.units: Mapping[str, Unit] = MappingProxyType(by_id)
        self._neighbours = self._link(links)
        self._counterparts = self._pair_counterparts()

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from what it was built of (the mapping proxies do not pickle): for the
        # worker processes that validate large publish requests.
        return (Topology, (tuple(self.units.values()), tuple(self.links), self.origin))

    def __repr__(self) -> str:
        return f"<Topology {self.origin}: {len(self.units)} units, {len(self.links)} links>"

    def __contains__(self, unit_id: object) -> bool:
        return isinstance(unit_id, str) and unit_id in self.units

    def unit(self, unit_id: str) -> Unit:
        """The unit with this id; :class:`UnknownUnitError` if there is none."""
        try:
            return self.units[unit_id]
        except KeyError:
            raise UnknownUnitError(f"unknown unit {unit_id!r} (not in {self.origin})") from None

    def neighbours(self, unit_id: str) -> frozenset[str]:
        """Units linked to this one by a neighbour link."""
        return self._neighbours[self.unit(unit_id).id]

    def counterpart(self, unit_id: str) -> str | None:
        """The BLO across the border from this BLO, if any."""
        return self._counterparts.get(self.unit(unit_id).id)

    def coordinators(self, country: str) -> tuple[str, ...]:
        """The national coordinator(s) of a country, by id; empty if it has none."""
        kind = UnitKind.COORDINATOR
        return tuple(
            sorted(u.id for u in self.units.values() if (u.kind, u.country) == (kind, country))
        )

    def country_of(self, unit_id: str) -> str:
        """The country a unit belongs to."""
        return self.unit(unit_id).country

    @property
    def links(self) -> tuple[tuple[str, str], ...]:
        """Every neighbour link once, as a sorted pair, in sorted order."""
        pairs = {tuple(sorted((a, b))) for a, near in self._neighbours.items() for b in near}
        return tuple(sorted((a, b) for a, b in pairs))

    def _error(self, message: str) -> TopologyError:
        return TopologyError(f"{self.origin}: {message}")

    def _link(self, links: Iterable[tuple[str, str]]) -> dict[str, frozenset[str]]:
        adjacency: dict[str, set[str]] = {u: set() for u in self.units}
        seen: dict[frozenset[str], int] = {}
        for n, (a, b) in enumerate(links, 1):
            for end in (a, b):
                if end not in self.units:
                    raise self._error(f"link {n} names unknown unit {end!r}")
            if a == b:
                raise self._error(f"link {n} links {a!r} to itself")
            if (first := seen.setdefault(frozenset((a, b)), n)) != n:
                raise self._error(f"link {n} ({a} - {b}) duplicates link {first}")
            ca, cb = self.units[a].country, self.units[b].country
            if ca != cb:
                # Cross-border contact is the counterparts' business, and releasability
                # decides what crosses; a neighbour link must never carry an alert abroad.
                raise self._error(
                    f"link {n} ({a} - {b}) crosses a border ({ca}/{cb}); neighbour links "
                    "stay inside one country, cross-border links are BLO counterparts"
                )
            adjacency[a].add(b)
            adjacency[b].add(a)
        return {u: frozenset(near) for u, near in adjacency.items()}

    def _pair_counterparts(self) -> dict[str, str]:
        pairs: dict[str, str] = {}
        for unit in self.units.values():
            if unit.counterpart is None:
                continue
            self._check_counterpart(unit, unit.counterpart)
            for a, b in ((unit.id, unit.counterpart), (unit.counterpart, unit.id)):
                if pairs.setdefault(a, b) != b:
                    raise self._error(
                        f"counterparts disagree: {a!r} pairs with {pairs[a]!r} and {b!r}"
                    )
        return pairs

    def _check_counterpart(self, unit: Unit, other_id: str) -> None:
        where = f"unit {unit.id!r}: counterpart {other_id!r}"
        other = self.units.get(other_id)
        if other is None:
            raise self._error(f"{where} is not a known unit")
        if other.kind is not UnitKind.BLO:
            raise self._error(f"{where} is not a BLO (kind {other.kind})")
        if other.country == unit.country:
            raise self._error(f"{where} is in the same country ({unit.country}), not abroad")
        for a, b in ((unit, other), (other, unit)):
            if b.country not in a.borders:
                raise self._error(f"{where}: {a.id} faces {min(a.borders)}, not {b.country}")


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        loc = ".".join(str(p) for p in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if isinstance(error["input"], bool):  # YAML 1.1 reads a bare NO (Norway), no, on... as bool
            message += f" (YAML read {error['input']}: quote the value)"
        parts.append(f"{loc}: {message}" if loc else message)
    return "; ".join(parts)


def _parse_unit(raw: object, n: int, origin: str) -> Unit:
    label = f"unit {n}"
    if isinstance(raw, Mapping) and isinstance(raw.get("id"), str):
        label += f" ({raw['id']})"
    try:
        return Unit.model_validate(raw)
    except ValidationError as exc:
        raise TopologyError(f"{origin}: {label}: {_describe(exc)}") from None


def _parse_link(raw: object, n: int, origin: str) -> tuple[str, str]:
    if isinstance(raw, list | tuple) and len(raw) == 2 and all(isinstance(x, str) for x in raw):
        return raw[0], raw[1]
    raise TopologyError(f"{origin}: link {n} must be a pair of unit ids like [IMT-A, BLO-B]")


def parse_topology(doc: object, origin: str = "<topology>") -> Topology:
    """A topology from a parsed document (``units`` and ``neighbours``); indices count from 1."""
    if not isinstance(doc, Mapping):
        raise TopologyError(f"{origin}: expected a mapping with 'units' and 'neighbours'")
    if unknown := sorted(str(k) for k in set(doc) - {"units", "neighbours"}):
        raise TopologyError(f"{origin}: unknown key(s) {', '.join(unknown)}")
    raw_units, raw_links = doc.get("units"), doc.get("neighbours") or []
    if not isinstance(raw_units, list) or not raw_units:
        raise TopologyError(f"{origin}: 'units' must be a non-empty list of units")
    if not isinstance(raw_links, list):
        raise TopologyError(f"{origin}: 'neighbours' must be a list of [unit, unit] pairs")
    units = [_parse_unit(raw, n, origin) for n, raw in enumerate(raw_units, 1)]
    links = [_parse_link(raw, n, origin) for n, raw in enumerate(raw_links, 1)]
    return Topology(units, links, origin)


def _from_text(text: str, origin: str) -> Topology:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
            where = f" at line {exc.problem_mark.line + 1}, column {exc.problem_mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc)
        raise TopologyError(f"{origin}: not valid YAML: {problem}{where}") from None
    return parse_topology(doc, origin)


def load_topology(path: Path | str | None = None) -> Topology:
    """The topology in a YAML file; ``None`` → the default shipped with the package."""
    if path is None:
        text = resources.files("schemas").joinpath("topology.yaml").read_text(encoding="utf-8")
        return _from_text(text, DEFAULT_ORIGIN)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise TopologyError(f"{path}: cannot read the topology: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise TopologyError(f"{path}: not UTF-8 text") from None
    return _from_text(text, str(path))


@functools.cache
def default_topology() -> Topology:
    """The default topology (cached: a :class:`Topology` is immutable)."""
    return load_topology()
