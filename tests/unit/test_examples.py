"""The shipped examples (examples/) are what the product accepts.

Every example event is valid by the event model, by its exported JSON Schema (schemas/json)
and by the AsyncAPI document's payload schema; there is one of each type; the example
configuration loads with the real loader against the default topology and has a principal
of each role. ``liaison route`` on the route examples is tests/e2e/test_examples_cli.py, the
ingress example tests/integration/test_ingress_example.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from schemas.events import CloudEvent
from schemas.export import JSON_DIR, filename
from schemas.vocabulary import AGENCY_TYPES, SYSTEM_TYPES, EventType
from services.core import asyncapi
from services.core.config import Role, read_file_config, resolve_topology

EXAMPLES = Path(__file__).parents[2] / "examples"
EVENTS = sorted((EXAMPLES / "events").rglob("*.json"))
ROUTES = sorted((EXAMPLES / "route").glob("*.json"))


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def test_one_example_of_each_event_type() -> None:
    agency = {p.stem for p in (EXAMPLES / "events").glob("*.json")}
    system = {p.stem for p in (EXAMPLES / "events" / "system").glob("*.json")}
    assert agency == {t.value for t in AGENCY_TYPES}
    assert system == {t.value for t in SYSTEM_TYPES}


@pytest.mark.parametrize("path", EVENTS + ROUTES, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_example_event_is_valid(path: Path) -> None:
    raw = path.read_bytes()
    event = CloudEvent.from_json(raw)  # the model ingest validates with
    doc = json.loads(raw)
    assert event.type.value == doc["type"]
    schema = _json(JSON_DIR / filename(EventType(doc["type"])))
    errors = [e.message for e in jsonschema_rs.validator_for(schema).iter_errors(doc)]
    assert errors == []
    # and as the AsyncAPI document describes it to agencies on the streams
    components = asyncapi.document()["components"]["schemas"]
    payload = {**components[doc["type"]], "components": {"schemas": components}}
    assert jsonschema_rs.Draft7Validator(payload).is_valid(doc)


def test_example_schemas_catch_a_broken_event() -> None:
    # the validation above is not vacuous: the seizure without its drugs is refused
    doc = _json(EXAMPLES / "events" / "seizure.reported.json")
    del doc["data"]["drugs"]
    schema = _json(JSON_DIR / filename(EventType.SEIZURE_REPORTED))
    assert not jsonschema_rs.validator_for(schema).is_valid(doc)


def test_the_events_tell_one_story() -> None:
    raised = _json(EXAMPLES / "events" / "alert.raised.json")
    for change in ("alert.updated", "alert.closed"):
        event = _json(EXAMPLES / "events" / f"{change}.json")
        assert (event["source"], event["subject"]) == (raised["source"], raised["id"])
    seizure = _json(EXAMPLES / "events" / "seizure.reported.json")
    assert seizure["data"]["alert_id"] == raised["id"]
    closed = _json(EXAMPLES / "events" / "alert.closed.json")
    assert closed["data"]["seizure_id"] == seizure["id"]


def test_example_configuration_loads_against_the_default_topology() -> None:
    config = read_file_config(EXAMPLES / "liaison.yaml")
    topology = resolve_topology(config)  # every unit it names exists
    assert config.topology is None  # the default topology
    roles = {p.role for p in config.principals}
    assert roles == set(Role)
    officers = [p for p in config.principals if p.role is Role.OFFICER]
    assert officers
    assert all(p.person for p in officers)  # one token per person, named
    assert config.webhooks
    assert all(w.url.startswith("https://") for w in config.webhooks)
    event_units = {_json(p)["source"].removeprefix("/units/") for p in EVENTS + ROUTES}
    published_for = {u for p in config.principals for u in p.units}
    assert {u for u in event_units if not u.startswith("/")} <= set(topology.units)
    # the agency examples can be published by the example's publishers
    agency_units = {
        _json(p)["source"].removeprefix("/units/") for p in (EXAMPLES / "events").glob("*.json")
    }
    assert agency_units <= published_for
