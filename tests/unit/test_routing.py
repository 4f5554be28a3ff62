"""Who receives an alert (docs/routing.md, "Who receives an alert"), rule by rule."""

from __future__ import annotations

from importlib import resources
from typing import Any

import pytest
import yaml

from schemas.topology import Topology, UnknownUnitError, default_topology, parse_topology
from schemas.vocabulary import Reason, Tlp, View
from services.notifier.routing import (
    AlertFacts,
    Recipient,
    corridor,
    next_countries,
    non_nominal,
    route_alert,
    route_change,
)

TOPOLOGY = default_topology()
FULL, NON = View.FULL.value, View.NON_NOMINAL.value


def _route(origin: str, topology: Topology = TOPOLOGY, **facts: Any) -> list[tuple[str, str, str]]:
    """(unit, "reason,reason", view) per recipient: compact to compare with a table."""
    for key in ("releasableto", "piireleasableto"):
        if facts.get(key) is not None:
            facts[key] = frozenset(facts[key])
    for key in ("route", "recipients"):
        facts[key] = tuple(facts.get(key, ()))
    recipients = route_alert(AlertFacts(origin, **facts), topology)
    return [(r.unit, ",".join(r.reasons), r.view.value) for r in recipients]


def test_design_worked_example() -> None:
    # BLO-OYBEK, urgent, route TJ→UZ→KZ, releasable to UZ and TJ (docs/routing.md, the worked example).
    assert _route("BLO-OYBEK", route=["TJ", "UZ", "KZ"], releasableto={"UZ", "TJ"}) == [
        ("BLO-FOTEHOBOD", "counterpart", NON),
        ("IMT-GULISTAN", "neighbour,corridor", FULL),
        ("IMT-TASHKENT", "neighbour,corridor", FULL),
        ("NIAC-UZ", "coordinator", FULL),
    ]


def test_recipient_shape() -> None:
    first = route_alert(AlertFacts("BLO-OYBEK", route=("TJ", "UZ", "KZ")), TOPOLOGY)[0]
    assert first == Recipient("IMT-GULISTAN", (Reason.NEIGHBOUR, Reason.CORRIDOR), View.FULL)


def test_corridor_through_several_hops_to_two_equally_near_units() -> None:
    # BLO-SARIOSIYO, route TJ→UZ→KZ, by hand: the next country after UZ is KZ.
    # Breadth-first from SARIOSIYO: TERMEZ 1, SAMARKAND 2, {GULISTAN, NUKUS} 3, TASHKENT 4...
    # Units bordering KZ: GULISTAN (3), NUKUS (3), TASHKENT (4) — the nearest are GULISTAN
    # and NUKUS, equally near. The shortest paths SARIOSIYO-TERMEZ-SAMARKAND-GULISTAN and
    # SARIOSIYO-TERMEZ-SAMARKAND-NUKUS make the corridor; TASHKENT (farther) is out, and
    # TURSUNZODA (counterpart, TJ) is out because the alert is not releasable to TJ.
    assert _route("BLO-SARIOSIYO", route=["TJ", "UZ", "KZ"]) == [
        ("IMT-GULISTAN", "corridor", FULL),
        ("IMT-NUKUS", "corridor", FULL),
        ("IMT-SAMARKAND", "corridor", FULL),
        ("IMT-TERMEZ", "neighbour,corridor", FULL),
        ("NIAC-UZ", "coordinator", FULL),
    ]


def test_corridor_skips_units_as_near_but_off_the_shortest_paths() -> None:
    # BLO-DUSTLIK, route KG→UZ→TM: units bordering TM are TERMEZ and NUKUS, both 5 hops
    # away through FERGHANA-TASHKENT-GULISTAN-SAMARKAND. OYBEK is 3 hops away, like
    # GULISTAN, but on no shortest path; AYRITOM and SARIOSIYO lie beyond TERMEZ.
    assert corridor("BLO-DUSTLIK", "TM", TOPOLOGY) == {
        "IMT-FERGHANA", "IMT-TASHKENT", "IMT-GULISTAN", "IMT-SAMARKAND", "IMT-TERMEZ", "IMT-NUKUS",
    }  # fmt: skip


def _diamond() -> Topology:
    """O1 with two equal shortest paths (via A1 and via B1) to T1, which borders XX; a farther
    unit F1 also borders XX; D1 is a dead end beside O1."""
    units = [
        {"id": i, "kind": "imt", "country": "UZ", "name": i, "borders": b}
        for i, b in [("O1", []), ("A1", []), ("B1", []), ("T1", ["XX"]), ("D1", []), ("F1", ["XX"])]
    ]
    links = [["O1", "A1"], ["O1", "B1"], ["A1", "T1"], ["B1", "T1"], ["O1", "D1"], ["T1", "F1"]]
    return parse_topology({"units": units, "neighbours": links}, "diamond")


def test_corridor_takes_every_shortest_path_to_the_same_unit() -> None:
    assert corridor("O1", "XX", _diamond()) == {"A1", "B1", "T1"}
    assert corridor("D1", "XX", _diamond()) == {"O1", "A1", "B1", "T1"}


@pytest.mark.parametrize(
    ("origin", "next_country", "expected"),
    [
        ("IMT-TASHKENT", "KZ", set()),  # the originator borders KZ itself: distance 0
        ("BLO-OYBEK", "TJ", set()),  # a BLO's area borders the country it faces
        ("BLO-OYBEK", "KG", {"IMT-TASHKENT"}),  # FERGHANA borders KG too, but is farther
        ("BLO-AYRITOM", "TM", {"IMT-TERMEZ"}),
        ("IMT-NUKUS", "AF", {"IMT-SAMARKAND", "IMT-TERMEZ"}),
        ("IMT-NUKUS", "CN", set()),  # nobody borders it
        ("NIAC-UZ", "KZ", set()),  # no neighbour links: nothing reachable
    ],
)
def test_corridor(origin: str, next_country: str, expected: set[str]) -> None:
    assert corridor(origin, next_country, TOPOLOGY) == expected


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        ((), ()),
        (("TJ", "KZ"), ()),  # the originator's country is not on the route
        (("TJ", "UZ"), ()),  # ... or is its last country
        (("TJ", "UZ", "KZ"), ("KZ",)),
        (("UZ", "TJ", "UZ", "KZ"), ("TJ", "KZ")),  # out and back in: every exit counts
        (("UZ", "UZ", "KG"), ("KG",)),
    ],
)
def test_next_countries(route: tuple[str, ...], expected: tuple[str, ...]) -> None:
    assert next_countries(route, "UZ") == expected


@pytest.mark.parametrize("route", [[], ["TJ", "KZ"], ["AF", "TJ", "UZ"]])
def test_no_corridor_without_a_next_country(route: list[str]) -> None:
    assert _route("IMT-SAMARKAND", route=route) == [
        ("IMT-GULISTAN", "neighbour", FULL),
        ("IMT-NUKUS", "neighbour", FULL),
        ("IMT-TERMEZ", "neighbour", FULL),
        ("NIAC-UZ", "coordinator", FULL),
    ]


def test_corridor_for_each_exit_of_the_route() -> None:
    # AYRITOM's route leaves UZ for TM (TERMEZ borders it) and later for KZ (GULISTAN and
    # NUKUS, both through TERMEZ-SAMARKAND): both corridors.
    assert _route("BLO-AYRITOM", route=["AF", "UZ", "TM", "UZ", "KZ"]) == [
        ("IMT-GULISTAN", "corridor", FULL),
        ("IMT-NUKUS", "corridor", FULL),
        ("IMT-SAMARKAND", "corridor", FULL),
        ("IMT-TERMEZ", "neighbour,corridor", FULL),
        ("NIAC-UZ", "coordinator", FULL),
    ]


def test_counterpart_across_the_border_when_released() -> None:
    assert _route("BLO-AYRITOM", releasableto={"AF"}) == [
        ("BLO-HAIRATAN", "counterpart", NON),
        ("IMT-TERMEZ", "neighbour", FULL),
        ("NIAC-UZ", "coordinator", FULL),
    ]


def test_foreign_blo_reaches_uzbekistan_and_its_coordinator() -> None:
    # BLO-DOSTUK (KG) has no neighbours; released to UZ its counterpart receives, and so
    # does NIAC-UZ because UZ ends up receiving. KG has no coordinator in the default.
    assert _route("BLO-DOSTUK", releasableto={"UZ"}) == [
        ("BLO-DUSTLIK", "counterpart", NON),
        ("NIAC-UZ", "coordinator", NON),
    ]
    assert _route("BLO-DOSTUK") == []  # default: nothing leaves Kyrgyzstan


def test_explicit_recipients() -> None:
    assert _route("BLO-OYBEK", recipients=["IMT-NUKUS", "IMT-TASHKENT", "IMT-NOWHERE"]) == [
        ("IMT-GULISTAN", "neighbour", FULL),
        ("IMT-NUKUS", "explicit", FULL),
        ("IMT-TASHKENT", "neighbour,explicit", FULL),
        ("NIAC-UZ", "coordinator", FULL),
    ]


def test_coordinator_named_explicitly_has_both_reasons() -> None:
    assert ("NIAC-UZ", "coordinator,explicit", FULL) in _route("IMT-NUKUS", recipients=["NIAC-UZ"])


@pytest.mark.parametrize("releasableto", [None, set(), {"KZ"}, {"TJ"}])
def test_default_releasability_keeps_the_alert_at_home(releasableto: set[str] | None) -> None:
    # None means "UZ only"; a list without UZ still lets the alert reach UZ units.
    got = _route("BLO-OYBEK", route=["TJ", "UZ", "KZ"], releasableto=releasableto)
    units = [unit for unit, _, _ in got]
    assert units[-3:] == ["IMT-GULISTAN", "IMT-TASHKENT", "NIAC-UZ"]
    assert ("BLO-FOTEHOBOD" in units) == (releasableto == {"TJ"})


def test_explicit_foreign_recipient_needs_releasability() -> None:
    assert "BLO-HAIRATAN" not in [u for u, _, _ in _route("BLO-OYBEK", recipients=["BLO-HAIRATAN"])]
    got = _route("BLO-OYBEK", recipients=["BLO-HAIRATAN"], releasableto={"AF"})
    assert ("BLO-HAIRATAN", "explicit", NON) in got


def test_tlp_red_goes_only_to_explicit_recipients() -> None:
    facts: dict[str, Any] = {"route": ["TJ", "UZ", "KZ"], "releasableto": {"UZ", "TJ"}}
    assert _route("BLO-OYBEK", tlp=Tlp.RED, **facts) == []
    explicit = ["IMT-NUKUS", "BLO-HAIRATAN", "BLO-FOTEHOBOD", "BLO-OYBEK"]
    assert _route("BLO-OYBEK", tlp=Tlp.RED, recipients=explicit, **facts) == [
        ("BLO-FOTEHOBOD", "explicit", NON),  # released to TJ; HAIRATAN (AF) is not
        ("IMT-NUKUS", "explicit", FULL),  # and no coordinator is added
    ]


def test_originator_never_receives_its_own_alert() -> None:
    got = _route("IMT-GULISTAN", recipients=["IMT-GULISTAN", "IMT-NUKUS"], tlp=Tlp.RED)
    assert got == [("IMT-NUKUS", "explicit", FULL)]
    got = _route("NIAC-UZ", recipients=["NIAC-UZ", "IMT-NUKUS"])  # nor as coordinator
    assert got == [("IMT-NUKUS", "explicit", FULL)]


def test_personal_data_released_abroad_gives_the_full_view() -> None:
    got = _route("BLO-OYBEK", releasableto={"UZ", "TJ"}, piireleasableto={"TJ"})
    assert ("BLO-FOTEHOBOD", "counterpart", FULL) in got
    got = _route("BLO-OYBEK", releasableto={"TJ"}, piireleasableto={"KZ"})
    assert ("BLO-FOTEHOBOD", "counterpart", NON) in got


def _with_tajik_coordinator() -> Topology:
    doc = yaml.safe_load(resources.files("schemas").joinpath("topology.yaml").read_text())
    doc["units"].append(
        {"id": "DCA-TJ", "kind": "coordinator", "country": "TJ", "name": "Drug Control Agency"}
    )
    return parse_topology(doc, "with-tj")


def test_coordinator_of_every_receiving_country() -> None:
    topology = _with_tajik_coordinator()
    got = _route("BLO-OYBEK", topology, route=["TJ", "UZ", "KZ"], releasableto={"UZ", "TJ"})
    assert got == [
        ("BLO-FOTEHOBOD", "counterpart", NON),
        ("DCA-TJ", "coordinator", NON),
        ("IMT-GULISTAN", "neighbour,corridor", FULL),
        ("IMT-TASHKENT", "neighbour,corridor", FULL),
        ("NIAC-UZ", "coordinator", FULL),
    ]
    # Released to TJ but nobody there receives: the Tajik coordinator is not told either.
    got = _route("IMT-NUKUS", topology, releasableto={"TJ"})
    assert [u for u, _, _ in got] == ["IMT-SAMARKAND", "NIAC-UZ"]


def test_unknown_origin_is_an_error() -> None:
    with pytest.raises(UnknownUnitError, match="unknown unit 'BLO-ATLANTIS'"):
        route_alert(AlertFacts("BLO-ATLANTIS"), TOPOLOGY)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"summary": "s", "persons": [{"name": "A"}, {"name": "B"}]}, {"summary": "s", "persons_count": 2}),
        ({"summary": "s", "persons": []}, {"summary": "s", "persons_count": 0}),
        ({"summary": "s", "persons": None}, {"summary": "s", "persons_count": 0}),
        ({"summary": "s"}, {"summary": "s", "persons_count": 0}),
    ],
)  # fmt: skip
def test_non_nominal(data: dict[str, Any], expected: dict[str, Any]) -> None:
    before = repr(data)
    assert non_nominal(data) == expected
    assert repr(data) == before  # the original is left alone


def test_a_change_reaches_each_recipient_the_topology_still_knows() -> None:
    """A unit a replaced topology dropped gets nothing (None, not another falsy value), and
    the recipients after it are still routed (mutation testing: ``continue`` → ``break``)."""
    received = {
        "BLO-GONE": (View.FULL, False),
        "IMT-GULISTAN": (View.FULL, False),
        "BLO-FOTEHOBOD": (View.FULL, True),
    }
    change = AlertFacts("BLO-OYBEK", releasableto=frozenset({"UZ", "TJ"}))
    assert route_change(change, received, TOPOLOGY) == {
        "BLO-GONE": None,
        "IMT-GULISTAN": View.FULL,
        "BLO-FOTEHOBOD": View.NON_NOMINAL,  # saw identities; this change releases none abroad
    }
