"""The topology: the shipped default matches docs/architecture.md, and bad files say what is wrong."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from schemas.topology import (
    Topology,
    TopologyError,
    Unit,
    UnitKind,
    UnknownUnitError,
    default_topology,
    load_topology,
    parse_topology,
)

TOPOLOGY = default_topology()

# docs/architecture.md, "Units": id, kind, country, borders (a BLO: the country it faces), counterpart.
DESIGN_UNITS = [
    ("NIAC-UZ", "coordinator", "UZ", set(), None),
    ("IMT-TASHKENT", "imt", "UZ", {"KZ", "KG", "TJ"}, None),
    ("IMT-GULISTAN", "imt", "UZ", {"KZ", "TJ"}, None),
    ("IMT-FERGHANA", "imt", "UZ", {"KG", "TJ"}, None),
    ("IMT-SAMARKAND", "imt", "UZ", {"TJ"}, None),
    ("IMT-TERMEZ", "imt", "UZ", {"AF", "TJ", "TM"}, None),
    ("IMT-NUKUS", "imt", "UZ", {"KZ", "TM"}, None),
    ("BLO-DUSTLIK", "blo", "UZ", {"KG"}, "BLO-DOSTUK"),
    ("BLO-OYBEK", "blo", "UZ", {"TJ"}, "BLO-FOTEHOBOD"),
    ("BLO-SARIOSIYO", "blo", "UZ", {"TJ"}, "BLO-TURSUNZODA"),
    ("BLO-AYRITOM", "blo", "UZ", {"AF"}, "BLO-HAIRATAN"),
    ("BLO-DOSTUK", "blo", "KG", {"UZ"}, "BLO-DUSTLIK"),
    ("BLO-FOTEHOBOD", "blo", "TJ", {"UZ"}, "BLO-OYBEK"),
    ("BLO-TURSUNZODA", "blo", "TJ", {"UZ"}, "BLO-SARIOSIYO"),
    ("BLO-HAIRATAN", "blo", "AF", {"UZ"}, "BLO-AYRITOM"),
]
DESIGN_LINKS = [
    ("IMT-TASHKENT", "IMT-GULISTAN"), ("IMT-TASHKENT", "IMT-FERGHANA"),
    ("IMT-TASHKENT", "BLO-OYBEK"), ("IMT-GULISTAN", "IMT-SAMARKAND"),
    ("IMT-GULISTAN", "BLO-OYBEK"), ("IMT-FERGHANA", "BLO-DUSTLIK"),
    ("IMT-SAMARKAND", "IMT-TERMEZ"), ("IMT-SAMARKAND", "IMT-NUKUS"),
    ("IMT-TERMEZ", "BLO-AYRITOM"), ("IMT-TERMEZ", "BLO-SARIOSIYO"),
]  # fmt: skip


def test_default_has_the_design_units_and_links() -> None:
    assert len(TOPOLOGY.units) == 15
    assert TOPOLOGY.links == tuple(sorted(tuple(sorted(link)) for link in DESIGN_LINKS))
    assert len(TOPOLOGY.links) == 10


@pytest.mark.parametrize(("unit_id", "kind", "country", "borders", "counterpart"), DESIGN_UNITS)
def test_default_unit(
    unit_id: str, kind: str, country: str, borders: set[str], counterpart: str | None
) -> None:
    unit = TOPOLOGY.unit(unit_id)
    assert (unit.kind, unit.country, unit.borders) == (UnitKind(kind), country, frozenset(borders))
    assert TOPOLOGY.country_of(unit_id) == country
    assert TOPOLOGY.counterpart(unit_id) == counterpart
    assert unit.name


def test_neighbours_are_undirected() -> None:
    assert TOPOLOGY.neighbours("BLO-OYBEK") == {"IMT-TASHKENT", "IMT-GULISTAN"}
    assert TOPOLOGY.neighbours("IMT-SAMARKAND") == {"IMT-GULISTAN", "IMT-TERMEZ", "IMT-NUKUS"}
    assert TOPOLOGY.neighbours("NIAC-UZ") == frozenset()
    assert TOPOLOGY.neighbours("BLO-FOTEHOBOD") == frozenset()


def test_coordinators() -> None:
    assert TOPOLOGY.coordinators("UZ") == ("NIAC-UZ",)
    assert TOPOLOGY.coordinators("TJ") == ()


def test_unknown_unit_is_a_clear_error() -> None:
    assert "IMT-FOO" not in TOPOLOGY
    assert "IMT-NUKUS" in TOPOLOGY
    assert [] not in TOPOLOGY  # unhashable: simply not a unit
    for lookup in (TOPOLOGY.unit, TOPOLOGY.neighbours, TOPOLOGY.counterpart, TOPOLOGY.country_of):
        with pytest.raises(UnknownUnitError, match=r"unknown unit 'IMT-FOO' \(not in "):
            lookup("IMT-FOO")


def test_topology_is_immutable_and_cached() -> None:
    assert default_topology() is TOPOLOGY
    with pytest.raises(TypeError):
        TOPOLOGY.units["IMT-FOO"] = TOPOLOGY.unit("IMT-NUKUS")  # type: ignore[index]
    with pytest.raises(ValueError, match="frozen"):
        TOPOLOGY.unit("IMT-NUKUS").name = "renamed"  # type: ignore[misc]


def _base() -> dict[str, Any]:
    """A small valid document each bad case below breaks in one way."""
    return {
        "units": [
            {"id": "NIAC-UZ", "kind": "coordinator", "country": "UZ", "name": "NIAC"},
            {"id": "IMT-A", "kind": "imt", "country": "UZ", "name": "IMT A", "borders": ["TJ"]},
            {"id": "BLO-B", "kind": "blo", "country": "UZ", "name": "BLO B", "borders": ["TJ"],
             "counterpart": "BLO-C"},
            {"id": "BLO-C", "kind": "blo", "country": "TJ", "name": "BLO C", "borders": ["UZ"]},
            {"id": "BLO-E", "kind": "blo", "country": "UZ", "name": "BLO E", "borders": ["TJ"]},
        ],
        "neighbours": [["IMT-A", "BLO-B"]],
    }  # fmt: skip


def test_base_document_is_valid() -> None:
    topology = parse_topology(_base(), "t.yaml")
    assert topology.counterpart("BLO-C") == "BLO-B"
    assert topology.neighbours("BLO-B") == {"IMT-A"}


def test_both_sides_may_declare_an_agreeing_counterpart() -> None:
    doc = _base()
    doc["units"][3]["counterpart"] = "BLO-B"
    assert parse_topology(doc).counterpart("BLO-B") == "BLO-C"


def test_neighbours_may_be_empty() -> None:
    doc = _base()
    doc["neighbours"] = None  # `neighbours:` with nothing under it
    assert parse_topology(doc).links == ()


Edit = Callable[[dict[str, Any]], object]


def _unit(n: int, **fields: object) -> Edit:
    return lambda doc: doc["units"][n].update(fields)


BAD_DOCUMENTS: list[tuple[str, Edit, str]] = [
    ("missing field", lambda d: d["units"][1].pop("name"), "t.yaml: unit 2 (IMT-A): name: Field required"),
    ("bad kind", _unit(1, kind="bcp"), "unit 2 (IMT-A): kind: Input should be 'coordinator', 'imt' or 'blo'"),
    ("bad country", _unit(1, country="uz"), "unit 2 (IMT-A): country: 'uz' is not an ISO 3166 alpha-2 code"),
    ("bad border", _unit(1, borders=["Tajikistan"]), "borders.0: 'Tajikistan' is not an ISO 3166"),
    ("YAML boolean", _unit(1, country=False), "country: Input should be a valid string (YAML read False: quote"),
    ("bad id", _unit(1, id="IMT A"), "unit 2 (IMT A): id: 'IMT A' is not a unit id"),
    ("id no event could carry", _unit(1, id="imt.a"), "unit 2 (imt.a): id: 'imt.a' is not a unit id"),
    ("unknown field", _unit(1, colour="red"), "unit 2 (IMT-A): colour: Extra inputs are not permitted"),
    ("own country", _unit(1, borders=["UZ"]), "unit 2 (IMT-A): borders lists the unit's own country UZ"),
    ("BLO faces two", _unit(2, borders=["TJ", "KG"]), "unit 3 (BLO-B): a BLO faces exactly one country"),
    ("IMT counterpart", _unit(1, counterpart="BLO-C"), "unit 2 (IMT-A): only a BLO has a counterpart"),
    ("duplicate id", _unit(4, id="IMT-A"), "t.yaml: unit 5: duplicate id 'IMT-A'"),
    ("unknown link end", lambda d: d["neighbours"].append(["IMT-A", "IMT-FOO"]), "t.yaml: link 2 names unknown unit 'IMT-FOO'"),
    ("self-link", lambda d: d["neighbours"].append(["IMT-A", "IMT-A"]), "link 2 links 'IMT-A' to itself"),
    ("duplicate link", lambda d: d["neighbours"].append(["BLO-B", "IMT-A"]), "link 2 (BLO-B - IMT-A) duplicates link 1"),
    ("not a pair", lambda d: d["neighbours"].append(["IMT-A"]), "link 2 must be a pair of unit ids"),
    ("cross-border link", lambda d: d["neighbours"].append(["IMT-A", "BLO-C"]), "link 2 (IMT-A - BLO-C) crosses a border (UZ/TJ)"),
    ("unknown counterpart", _unit(2, counterpart="BLO-X"), "unit 'BLO-B': counterpart 'BLO-X' is not a known unit"),
    ("counterpart not a BLO", _unit(2, counterpart="NIAC-UZ"), "counterpart 'NIAC-UZ' is not a BLO (kind coordinator)"),
    ("counterpart at home", _unit(2, counterpart="BLO-E"), "counterpart 'BLO-E' is in the same country (UZ), not abroad"),
    ("counterparts disagree", _unit(3, counterpart="BLO-E"), "counterparts disagree: 'BLO-C' pairs with 'BLO-B' and 'BLO-E'"),
    ("faces elsewhere", _unit(2, borders=["KG"]), "counterpart 'BLO-C': BLO-B faces KG, not TJ"),
    ("not faced back", _unit(3, borders=["KG"]), "counterpart 'BLO-C': BLO-C faces KG, not UZ"),
    ("unit not a mapping", lambda d: d["units"].append("IMT-Z"), "unit 6: Input should be a valid dictionary"),
    ("no units", lambda d: d.pop("units"), "t.yaml: 'units' must be a non-empty list"),
    ("unknown key", lambda d: d.update(links=[]), "t.yaml: unknown key(s) links"),
    ("links not a list", lambda d: d.update(neighbours="IMT-A"), "'neighbours' must be a list"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("edit", "message"), [c[1:] for c in BAD_DOCUMENTS], ids=[c[0] for c in BAD_DOCUMENTS]
)
def test_bad_document_names_the_problem(edit: Edit, message: str) -> None:
    doc = copy.deepcopy(_base())
    edit(doc)
    with pytest.raises(TopologyError) as caught:
        parse_topology(doc, "t.yaml")
    assert message in str(caught.value)


@pytest.mark.parametrize("doc", [None, "units", ["IMT-A"], 42])
def test_document_that_is_no_mapping(doc: object) -> None:
    with pytest.raises(TopologyError, match=r"^t\.yaml: expected a mapping with 'units'"):
        parse_topology(doc, "t.yaml")


def test_load_from_a_path(tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text(yaml.safe_dump(_base()), encoding="utf-8")
    topology = load_topology(path)
    assert isinstance(topology, Topology)
    assert topology.origin == str(path)
    assert set(topology.units) == {"NIAC-UZ", "IMT-A", "BLO-B", "BLO-C", "BLO-E"}
    assert load_topology(str(path)).units == topology.units


def test_default_loads_from_package_data() -> None:
    assert load_topology().units == TOPOLOGY.units
    assert TOPOLOGY.origin == "schemas/topology.yaml"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "units: [\n",
            "not valid YAML: expected the node content, but found '<stream end>' at line 2, column 1",
        ),
        ("just text\n", "expected a mapping"),
        ("", "expected a mapping"),
    ],
)
def test_bad_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TopologyError, match=f"^{re.escape(str(path))}: ") as caught:
        load_topology(path)
    assert message in str(caught.value)


def test_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(
        TopologyError, match=f"^{re.escape(str(missing))}: cannot read the topology: No such file"
    ):
        load_topology(missing)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"units: \xff\xfe\n")
    with pytest.raises(TopologyError, match=r"binary\.yaml: not UTF-8 text"):
        load_topology(binary)


def test_unit_model_is_strict() -> None:
    unit = Unit(id="IMT-X", kind=UnitKind.IMT, country="UZ", name="IMT X", borders=frozenset())
    assert (unit.counterpart, unit.notes) == (None, None)
    with pytest.raises(ValueError, match="Extra inputs"):
        Unit.model_validate({"id": "IMT-X", "kind": "imt", "country": "UZ", "name": "x", "x": 1})


def test_every_default_unit_has_a_place_and_a_time_zone() -> None:
    # the console's schematic map and local times need them; the file may omit them
    for unit in TOPOLOGY.units.values():
        assert unit.lat is not None, unit.id
        assert unit.lon is not None, unit.id
        assert unit.timezone, unit.id
    assert TOPOLOGY.unit("BLO-HAIRATAN").timezone == "Asia/Kabul"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"lat": 40.5}, "lat and lon go together"),
        ({"lat": 91, "lon": 60}, "less than or equal to 90"),
        ({"timezone": "Asia/Nowhere"}, "'Asia/Nowhere' is not an IANA time zone"),
        ({"timezone": "../etc/passwd"}, "is not an IANA time zone"),
    ],
)
def test_bad_place_or_time_zone_is_named(extra: dict[str, Any], message: str) -> None:
    doc = {"units": [{"id": "IMT-X", "kind": "imt", "country": "UZ", "name": "X", **extra}]}
    with pytest.raises(TopologyError, match=f"unit 1 \\(IMT-X\\): .*{re.escape(message)}"):
        parse_topology(doc, "t.yaml")
