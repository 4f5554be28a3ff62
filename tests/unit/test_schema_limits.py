"""What the schema refuses before it costs anything: control characters in text, unbounded
lists and strings (issue 13, items 5 and 9)."""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.events import CloudEvent
from schemas.export import event_schema
from schemas.limits import explain
from schemas.topology import default_topology
from schemas.vocabulary import SYSTEM_TYPES, EventType
from services.ingest.intake import Rejected, validate_batch, validate_event
from tests.unit.test_events import DATA, raw

TOPOLOGY = default_topology()


def _set(event: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``event`` with the field at dotted ``path`` (``data.persons.0.name``) set."""
    changed = copy.deepcopy(event)
    *parents, last = path.split(".")
    node: Any = changed
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[int(last) if isinstance(node, list) else last] = value
    return changed


def _rejected(event: dict[str, Any]) -> list[tuple[str, str]]:
    """Each error's field and message, as ingest reports them (the model's, for system events)."""
    if event["type"] in SYSTEM_TYPES:
        with pytest.raises(ValidationError) as invalid:
            CloudEvent.model_validate(event)
        return [(".".join(map(str, e["loc"])), explain(e)) for e in invalid.value.errors()]
    with pytest.raises(Rejected) as caught:
        validate_event(event, TOPOLOGY)
    return [(r.field, r.message) for r in caught.value.rejections]


def _accepted(event: dict[str, Any]) -> CloudEvent:
    if event["type"] in SYSTEM_TYPES:
        return CloudEvent.model_validate(event)
    return validate_event(event, TOPOLOGY)


ALERT = raw(EventType.ALERT_RAISED, source="/units/BLO-OYBEK")
SEIZURE = raw(EventType.SEIZURE_REPORTED, source="/units/IMT-GULISTAN")
CLOSED = raw(EventType.ALERT_CLOSED)
ACK = raw(EventType.ALERT_ACKNOWLEDGED)

# One line each: ids, names, labels, the summary. A newline in a name is a forged second line.
ONE_LINE = [
    (ALERT, "data.summary"),
    (ALERT, "data.persons.0.name"),
    (ALERT, "data.persons.0.document"),
    (ALERT, "data.vehicles.0.plate"),
    (SEIZURE, "data.drugs.0.substance"),
    (SEIZURE, "data.location.region"),
    (SEIZURE, "data.transport"),
    (ACK, "data.officer"),
    (ALERT, "dataschema"),
]
# Notes and reasons may run over several lines (and hold tabs), nothing else.
NOTES = [
    (ALERT, "data.consignment"),
    (ALERT, "data.vehicles.0.description"),
    (SEIZURE, "data.concealment"),
    (CLOSED, "data.reason"),
    (ACK, "data.note"),
]
CONTROLS = {
    "escape": "ALL CLEAR\x1b[8m hidden",  # ANSI: hides what follows on a terminal
    "carriage return": "closed by BLO-OYBEK\rX",
    "nul": "a\x00b",
    "c1 csi": "a\x9b31mb",
    "del": "a\x7fb",
    "line separator": "a\u2028b",
}


@pytest.mark.parametrize("control", CONTROLS.values(), ids=list(CONTROLS))
@pytest.mark.parametrize(("event", "path"), ONE_LINE + NOTES, ids=lambda v: str(v)[:30])
def test_control_characters_in_text_are_refused_where_they_are(
    event: dict[str, Any], path: str, control: str
) -> None:
    [(field, message)] = _rejected(_set(event, path, control))
    assert field == path
    assert "control character" in message
    assert "U+" in message  # which one, since it cannot be shown


@pytest.mark.parametrize(("event", "path"), ONE_LINE, ids=lambda v: str(v)[:30])
def test_one_line_fields_refuse_a_newline_inside(event: dict[str, Any], path: str) -> None:
    [(field, message)] = _rejected(_set(event, path, "Lt. A\nclosed by BLO-OYBEK"))
    assert field == path
    assert "U+000A" in message


@pytest.mark.parametrize(("event", "path"), NOTES, ids=lambda v: str(v)[:30])
def test_notes_keep_newlines_and_tabs(event: dict[str, Any], path: str) -> None:
    accepted = _accepted(_set(event, path, "first line\n\tsecond line\r\nthird"))
    value: Any = json.loads(accepted.to_json())
    for part in path.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    assert value == "first line\n\tsecond line\nthird"  # CRLF becomes LF


def test_surrounding_whitespace_is_still_stripped_from_one_line_fields() -> None:
    event = validate_event(_set(ALERT, "data.summary", "\n KAMAZ truck \n"), TOPOLOGY)
    assert json.loads(event.to_json())["data"]["summary"] == "KAMAZ truck"


TOO_MANY = 10_000
LISTS = [
    (ALERT, "data.route", "TJ"),
    (ALERT, "data.recipients", "IMT-NUKUS"),
    (ALERT, "data.persons", DATA[EventType.ALERT_RAISED]["persons"][0]),
    (ALERT, "data.vehicles", DATA[EventType.ALERT_RAISED]["vehicles"][0]),
    (SEIZURE, "data.drugs", {"substance": "heroin", "quantity": 1, "measure": "kg"}),
    (SEIZURE, "data.agencies", "MIA"),
    (SEIZURE, "data.route", "UZ"),
    (SEIZURE, "data.persons", DATA[EventType.SEIZURE_REPORTED]["persons"][0]),
]


@pytest.mark.parametrize(("event", "path", "item"), LISTS, ids=lambda v: str(v)[:30])
def test_every_list_is_bounded(event: dict[str, Any], path: str, item: Any) -> None:
    [(field, message)] = _rejected(_set(event, path, [item] * TOO_MANY))
    assert field == path
    assert "at most" in message


DELIVERED = raw(EventType.ALERT_DELIVERED)
INVALID_ITEMS = [
    *((event, path, {}) for event, path, _ in LISTS),  # each item lacks every required field
    *((event, path, 1) for event, path, _ in LISTS),
    (DELIVERED, "data.reasons", "nearby"),  # a system event: the model validates it all the same
]


@pytest.mark.parametrize(("event", "path", "item"), INVALID_ITEMS, ids=lambda v: str(v)[:30])
def test_a_list_over_its_bound_is_refused_before_its_items_are_validated(
    event: dict[str, Any], path: str, item: Any
) -> None:
    # pydantic counts only the items that validate: 10,000 invalid ones were each validated
    # and reported (30,000 errors for 30 KB of {}), ~5 µs per byte of the request
    [(field, message)] = _rejected(_set(event, path, [item] * TOO_MANY))
    assert field == path
    assert (
        message
        == f"Tuple should have at most {_bound(event, path)} items after validation, not {TOO_MANY}"
    )


def _bound(event: dict[str, Any], path: str) -> int:
    """The ``maxItems`` of the exported JSON Schema at ``path`` (``data.persons``)."""
    schema = event_schema(EventType(event["type"]))
    node: Any = schema["properties"]["data"]
    for part in path.split(".")[1:]:
        node = _resolve(schema, node)["properties"][part]
    node = _resolve(schema, node)
    for option in node.get("anyOf", [node]):
        if "maxItems" in option:
            return int(option["maxItems"])
    raise AssertionError(f"no maxItems at {path}: {node}")


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node or ("allOf" in node and len(node["allOf"]) == 1):
        if "$ref" in node:
            node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]] | {
                k: v for k, v in node.items() if k != "$ref"
            }
        else:
            node = node["allOf"][0]
    return node


def test_a_long_country_list_is_refused_before_it_is_split() -> None:
    countries = ",".join(["UZ"] * 2_000_000)  # 6 MB: splitting it costs ~a second
    started = time.process_time()
    [(field, message)] = _rejected({**ALERT, "releasableto": countries})
    assert field == "releasableto"
    assert "at most" in message
    assert time.process_time() - started < 0.05 * 20  # generous: refused from its length alone


@pytest.mark.parametrize("type_", list(EventType), ids=lambda t: t.value)
def test_every_string_and_array_of_the_exported_schema_is_bounded(type_: EventType) -> None:
    unbounded: list[str] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            kind = node.get("type")
            if kind == "array" and "maxItems" not in node:
                unbounded.append(where)
            bounded = {"maxLength", "enum", "const", "format"} & node.keys()
            if kind == "string" and not bounded:
                unbounded.append(where)
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}/{i}")

    walk(event_schema(type_), "#")
    assert unbounded == []


def test_a_count_too_large_for_a_person_is_refused() -> None:
    assert [f for f, _ in _rejected(_set(SEIZURE, "data.detained", 10**12))] == ["data.detained"]


def test_every_error_of_a_batch_still_names_its_event() -> None:
    bad = _set(ALERT, "data.summary", "a\x1bb")
    with pytest.raises(Rejected) as caught:
        validate_batch([ALERT, bad], TOPOLOGY)
    assert [(r.index, r.field) for r in caught.value.rejections] == [(1, "data.summary")]


def test_the_canonical_factories_still_validate() -> None:
    for type_, data in DATA.items():
        CloudEvent.model_validate(raw(type_, data))
