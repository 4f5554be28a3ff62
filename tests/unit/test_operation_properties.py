"""The handling rules with operations (docs/routing.md, "Operations") as properties over
random topologies, alerts and member sets.

An alert of an operation goes to the operation's members and to nobody else, and never
further than its handling codes allow: every recipient is a member; nothing reaches a country
outside ``releasableto``; nobody outside ``piireleasableto`` sees a person's identity; ``tlp``
red reaches explicit recipients who are members only; the originator never hears its own
alert; and, red aside, every member the codes allow receives it, with the reason
``operation``. Pure: routing and views only, no I/O.
"""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from schemas.events import CloudEvent
from schemas.topology import Topology
from schemas.vocabulary import Reason, Tlp, View
from services.notifier.handlers import facts_of, views_of
from services.notifier.routing import route_alert
from tests.unit.test_handling_properties import PROPERTIES, _allowed, scenarios

Case = tuple[Topology, CloudEvent, list[dict[str, str]], frozenset[str]]


@st.composite
def operations(draw: st.DrawFn) -> Case:
    """An alert scenario and the members of its operation (the originator among them, as the
    register makes every operation's opener a member, and some units the topology lacks)."""
    topology, event, persons = draw(scenarios())
    ids = sorted(topology.units)
    members = frozenset(draw(st.lists(st.sampled_from(ids), unique=True)))
    members |= {event.unit or ""} | set(draw(st.lists(st.just("IMT-GONE"), max_size=1)))
    return topology, event, persons, members


@PROPERTIES
@given(operations())
def test_an_operations_alert_reaches_members_only_within_its_handling_codes(case: Case) -> None:
    topology, event, persons, members = case
    facts = facts_of(event, members)
    home = topology.country_of(facts.origin)
    released = _allowed(home, event.releasable_countries)
    pii = _allowed(home, event.pii_countries)
    recipients = route_alert(facts, topology)
    views = views_of(event, {r.view for r in recipients})
    units = {r.unit for r in recipients}
    assert units <= members - {facts.origin}
    if event.tlp is Tlp.RED:
        assert units <= set(facts.recipients)
    for recipient in recipients:
        country = topology.country_of(recipient.unit)
        assert country in released, recipient
        assert recipient.reasons, recipient
        if country not in pii:
            assert recipient.view is View.NON_NOMINAL, recipient
            seen = json.dumps(views[recipient.view])
            for person in persons:
                assert person["name"] not in seen
                assert person["document"] not in seen


@PROPERTIES
@given(operations())
def test_every_member_the_codes_allow_receives_it_because_it_is_a_member(case: Case) -> None:
    topology, event, _, members = case
    facts = facts_of(event, members)
    released = _allowed(topology.country_of(facts.origin), event.releasable_countries)
    recipients = {r.unit: r for r in route_alert(facts, topology)}
    if event.tlp is Tlp.RED:
        return  # explicit members only: the property above
    expected = {
        m
        for m in members
        if m in topology and m != facts.origin and topology.country_of(m) in released
    }
    assert set(recipients) == expected
    assert all(Reason.OPERATION in r.reasons for r in recipients.values())


@PROPERTIES
@given(operations())
def test_a_non_member_gets_nothing_that_routing_would_have_given_it(case: Case) -> None:
    topology, event, _, members = case
    without = {r.unit for r in route_alert(facts_of(event), topology)}
    within = {r.unit for r in route_alert(facts_of(event, members), topology)}
    assert not (within - members)
    assert not ((without - members) & within)
