"""Who receives an alert, why, and what they may see (docs/routing.md). Pure: no I/O.

For an alert from unit O in country C the candidates are O's neighbours; the
*corridor* towards each next country X of the route (every unit on a shortest
neighbour-path from O to the nearest units whose area borders X); O's
counterpart BLO; the explicitly named units. They are filtered — never O, only
countries the originator released the alert to (C always) — and then the
national coordinators of C and of every other receiving country are added.
``tlp`` red keeps only the explicit recipients (filtered the same way).

An alert of an operation (a closed group) goes to the operation's members and to nobody
else: every member is a candidate (reason ``operation``), every non-member is dropped —
neighbours, corridor, counterparts, coordinators and explicit recipients alike — and then
the same filters apply (never O, ``releasableto``, ``tlp`` red: explicit members only,
``piireleasableto`` for the view). So an operation never widens what the handling codes
allow, and non-members learn nothing of it.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from schemas.topology import Topology
from schemas.vocabulary import Reason, Tlp, View
from services.core.dsse import digest_of

_ORDER = {reason: index for index, reason in enumerate(Reason)}


@dataclass(frozen=True, slots=True)
class AlertFacts:
    """What routing needs from an ``alert.raised`` event; the notifier builds it."""

    origin: str
    """The originating unit's id."""
    route: tuple[str, ...] = ()
    """Ordered country codes, e.g. ``("TJ", "UZ", "KZ")``."""
    recipients: tuple[str, ...] = ()
    """Explicit recipients (unit ids); ids the topology does not know are ignored."""
    tlp: Tlp = Tlp.AMBER
    releasableto: frozenset[str] | None = None
    """Countries the alert may reach; None → the originator's country only."""
    piireleasableto: frozenset[str] | None = None
    """Countries that may see personal data; None → no foreign country."""
    members: frozenset[str] | None = None
    """The members of the alert's operation; None → the alert belongs to no operation."""


@dataclass(frozen=True, slots=True)
class Recipient:
    """One unit that receives the alert, why (canonical order) and with which view."""

    unit: str
    reasons: tuple[Reason, ...]
    view: View


def _shortest_paths(origin: str, topology: Topology) -> tuple[dict[str, int], dict[str, set[str]]]:
    """Breadth-first distances from ``origin`` and every shortest-path predecessor."""
    dist: dict[str, int] = {origin: 0}
    preds: dict[str, set[str]] = {origin: set()}
    queue = deque([origin])
    while queue:
        unit = queue.popleft()
        for near in topology.neighbours(unit):
            if near not in dist:
                dist[near], preds[near] = dist[unit] + 1, {unit}
                queue.append(near)
            elif dist[near] == dist[unit] + 1:
                preds[near].add(unit)
    return dist, preds


def corridor(origin: str, next_country: str, topology: Topology) -> frozenset[str]:
    """Units on any shortest neighbour-path from ``origin`` to the nearest units bordering X.

    The nearest bordering units are included, ``origin`` is not. If ``origin`` itself
    borders X it is the nearest (distance 0) and the corridor is empty: the route
    leaves the country where the originator already is, and its neighbours hear anyway.
    """
    dist, preds = _shortest_paths(origin, topology)
    bordering = [u for u in dist if next_country in topology.unit(u).borders]
    if not bordering:
        return frozenset()
    nearest = min(dist[u] for u in bordering)
    on_paths: set[str] = set()
    stack = [u for u in bordering if dist[u] == nearest]
    while stack:  # walk every shortest path back to the origin
        unit = stack.pop()
        if unit not in on_paths:
            on_paths.add(unit)
            stack.extend(preds[unit])
    return frozenset(on_paths - {origin})


def next_countries(route: Iterable[str], country: str) -> tuple[str, ...]:
    """The countries the route enters right after ``country``, in route order.

    A route may pass through a country more than once (out and back in); every exit
    counts, so each gets its corridor.
    """
    exits = (after for here, after in itertools.pairwise(route) if here == country)
    return tuple(dict.fromkeys(x for x in exits if x != country))


def _candidates(facts: AlertFacts, topology: Topology, country: str) -> dict[str, set[Reason]]:
    reasons: dict[str, set[Reason]] = {}

    def add(units: Iterable[str], reason: Reason) -> None:
        for unit in units:
            reasons.setdefault(unit, set()).add(reason)

    # Ingest rejects unknown explicit recipients; a replaced topology may still drop one.
    add((u for u in facts.recipients if u in topology), Reason.EXPLICIT)
    if facts.tlp is Tlp.RED:
        return reasons
    if facts.members is not None:
        add((u for u in facts.members if u in topology), Reason.OPERATION)
    add(topology.neighbours(facts.origin), Reason.NEIGHBOUR)
    for exit_country in next_countries(facts.route, country):
        add(corridor(facts.origin, exit_country, topology), Reason.CORRIDOR)
    counterpart = topology.counterpart(facts.origin)
    add([counterpart] if counterpart else [], Reason.COUNTERPART)
    return reasons


def route_alert(facts: AlertFacts, topology: Topology) -> tuple[Recipient, ...]:
    """The recipients of an alert, ordered by unit id; an unknown origin raises
    :class:`~schemas.topology.UnknownUnitError`."""
    country = topology.country_of(facts.origin)
    # Releasability restricts crossing borders: the originator's own country is always in.
    allowed = {country} | (facts.releasableto or frozenset())
    pii = {country} | (facts.piireleasableto or frozenset())
    members = facts.members
    reasons = {
        unit: why
        for unit, why in _candidates(facts, topology, country).items()
        if unit != facts.origin
        and topology.country_of(unit) in allowed
        and (members is None or unit in members)
    }
    if facts.tlp is not Tlp.RED:
        # Coordinators follow the alert: each receiving country's coordinator hears of it
        # (of an operation's alert, only a coordinator that is a member).
        receiving = {country} | {topology.country_of(u) for u in reasons}
        for coordinator in (c for k in receiving for c in topology.coordinators(k)):
            if coordinator != facts.origin and (members is None or coordinator in members):
                reasons.setdefault(coordinator, set()).add(Reason.COORDINATOR)
    return tuple(
        Recipient(
            unit,
            tuple(sorted(reasons[unit], key=_ORDER.__getitem__)),
            View.FULL if topology.country_of(unit) in pii else View.NON_NOMINAL,
        )
        for unit in sorted(reasons)
    )


def route_change(
    change: AlertFacts, received: Mapping[str, tuple[View, bool]], topology: Topology
) -> dict[str, View | None]:
    """Which view of a change each of the alert's recipients may have; None: withheld.

    ``received`` maps each unit that received the alert to the view it got and whether
    it was named explicitly. A change goes no further than its alert went, and no
    further than its own handling codes allow: the strictest of both apply. The
    alert's were applied when it was delivered (who received it, in which view); the
    change's are applied here — only countries in its ``releasableto`` (and the
    originator's), with ``tlp`` red only explicit recipients, and identities only in
    countries of its ``piireleasableto`` (and the originator's) that saw them before.
    """
    country = topology.country_of(change.origin)
    allowed = {country} | (change.releasableto or frozenset())
    pii = {country} | (change.piireleasableto or frozenset())
    views: dict[str, View | None] = {}
    for unit, (view, explicit) in received.items():
        if unit not in topology:  # a replaced topology dropped it: nothing can be released
            views[unit] = None
            continue
        there = topology.country_of(unit)
        if there not in allowed or (change.tlp is Tlp.RED and not explicit):
            views[unit] = None
        elif view is View.FULL and there in pii:
            views[unit] = View.FULL
        else:
            views[unit] = View.NON_NOMINAL
    return views


def non_nominal_event(wire: Mapping[str, Any]) -> dict[str, Any]:
    """The event without persons' identities. A signed event's disclosures go with them (their
    salts would confirm a guessed name); their digests stay, in ``piidigests``, so that the
    copy still verifies against the publisher's signature (docs/provenance.md)."""
    view = {key: value for key, value in wire.items() if key != "piidisclosures"}
    view["data"] = non_nominal(wire["data"])
    disclosures = wire.get("piidisclosures")
    if disclosures:
        view["piidigests"] = "~".join(digest_of(d) for d in disclosures.split("~"))
    return view


def non_nominal(data: Mapping[str, Any]) -> dict[str, Any]:
    """The data without persons' identities, their number left in ``persons_count``."""
    view = {key: value for key, value in data.items() if key != "persons"}
    view["persons_count"] = len(data.get("persons") or ())
    return view
