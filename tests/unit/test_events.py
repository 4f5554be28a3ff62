"""The CloudEvent envelope and the data models: what is accepted, normalised, and refused where."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.alerts import AlertCancelled, AlertClosed, AlertRaised, AlertUpdated, Window
from schemas.events import DATA_MODELS, NEEDS_SUBJECT, CloudEvent
from schemas.keys import KeyRegistered, KeyRevoked
from schemas.operations import OperationClosed, OperationOpened
from schemas.receipts import (
    AlertAcknowledged,
    AlertDelivered,
    AlertEscalated,
    AlertWebhookFailed,
)
from schemas.seizures import SeizureReported
from schemas.vocabulary import AGENCY_TYPES, SYSTEM_TYPES, EventType, Reason, Tlp, View
from tests import factories

T0 = "2024-05-01T10:00:00+05:00"
T1 = "2024-05-01T22:00:00+05:00"

DATA: dict[EventType, dict[str, Any]] = {
    EventType.SEIZURE_REPORTED: {
        "occurred_at": T0,
        "drugs": [{"substance": "Heroin ", "quantity": 20032, "measure": "g"}],
        "agencies": ["mia", "SSS", "SCC", "border-troops"],
        "location": {"unit": "IMT-GULISTAN", "region": "Syrdarya", "lat": 40.49, "lon": 68.78},
        "route": ["tj", "UZ", "KZ"],
        "transport": "truck",
        "concealment": "inside cotton bales",
        "detained": 1,
        "persons": [{"name": "Example Driver", "nationality": "tj"}],
        "alert_id": "alert-1",
    },
    EventType.ALERT_RAISED: {
        "severity": "urgent",
        "summary": "KAMAZ truck suspected of carrying heroin",
        "route": ["TJ", "UZ", "KZ"],
        "recipients": ["IMT-NUKUS"],
        "persons": [{"name": "Example Driver", "nationality": "TJ", "document": "P-0000"}],
        "vehicles": [{"plate": "01 TJ 000 AA", "description": "white KAMAZ"}],
        "consignment": "about 20 kg of heroin in cotton bales",
        "window": {"from": T0, "until": T1},
        "expires_at": T1,
    },
    EventType.ALERT_UPDATED: {"severity": "flash", "window": {"from": T0, "until": T1}},
    EventType.ALERT_CANCELLED: {"reason": "false alarm"},
    EventType.ALERT_CLOSED: {"reason": "consignment seized", "seizure_id": "seizure-1"},
    EventType.ALERT_DELIVERED: {
        "alert_id": "alert-1",
        "alert_source": "BLO-OYBEK",
        "recipient": "BLO-FOTEHOBOD",
        "reasons": ["counterpart"],
        "view": "non-nominal",
        "delivered_at": T0,
    },
    EventType.ALERT_ACKNOWLEDGED: {
        "alert_id": "alert-1",
        "unit": "IMT-GULISTAN",
        "officer": "Lt. A",
        "note": "on it",
        "acknowledged_at": T0,
    },
    EventType.ALERT_ESCALATED: {
        "alert_id": "alert-1",
        "unit": "IMT-GULISTAN",
        "severity": "urgent",
        "deadline": T0,
        "coordinator": "NIAC-UZ",
        "escalated_at": T1,
    },
    EventType.ALERT_WEBHOOK_FAILED: {
        "alert_id": "alert-1",
        "event_id": "alert-1",
        "unit": "IMT-GULISTAN",
        "webhook_id": "msg_alert-1_IMT-GULISTAN",
        "endpoint": "https://hooks.example.invalid/liaison",
        "attempts": 10,
        "last_status": 503,
        "reason": "no success in 10 attempts",
        "queued_at": T0,
        "failed_at": T1,
    },
    EventType.KEY_REGISTERED: {
        "keyid": "uz-customs/2026-01",
        "purpose": "publisher",
        "public_key": "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
        "publisher": "uz-customs",
        "units": ["BLO-OYBEK"],
        "signatures": "required",
        "not_before": T0,
    },
    EventType.KEY_REVOKED: {"keyid": "uz-customs/2026-01", "revoked_at": T1, "reason": "lost"},
    EventType.OPERATION_OPENED: {
        "name": "OP-NORTH-2026",
        "title": "Northern route",
        "members": ["IMT-GULISTAN", "BLO-FOTEHOBOD"],
        "start": T0,
        "end": T1,
    },
    EventType.OPERATION_CLOSED: {"name": "OP-NORTH-2026", "reason": "done"},
}


def raw(type_: EventType, data: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """A valid wire event of ``type_`` (agency or system source as the type requires)."""
    source = "/liaison/notifier" if type_ in SYSTEM_TYPES else "/units/BLO-OYBEK"
    event = {
        "specversion": "1.0",
        "id": f"{type_.value}-1",
        "source": source,
        "type": type_.value,
        "time": T0,
        "subject": "alert-1",
        "data": DATA[type_] if data is None else data,
    }
    return {**event, **extra}


def errors(payload: Any) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as caught:
        CloudEvent.model_validate(payload)
    return caught.value.errors()


def locs(payload: Any) -> list[tuple[str | int, ...]]:
    return [e["loc"] for e in errors(payload)]


def test_every_type_has_a_data_model() -> None:
    assert set(DATA_MODELS) == set(EventType)
    assert {
        EventType.SEIZURE_REPORTED: SeizureReported,
        EventType.ALERT_RAISED: AlertRaised,
        EventType.ALERT_UPDATED: AlertUpdated,
        EventType.ALERT_CANCELLED: AlertCancelled,
        EventType.ALERT_CLOSED: AlertClosed,
        EventType.ALERT_DELIVERED: AlertDelivered,
        EventType.ALERT_ACKNOWLEDGED: AlertAcknowledged,
        EventType.ALERT_ESCALATED: AlertEscalated,
        EventType.ALERT_WEBHOOK_FAILED: AlertWebhookFailed,
        EventType.KEY_REGISTERED: KeyRegistered,
        EventType.KEY_REVOKED: KeyRevoked,
        EventType.OPERATION_OPENED: OperationOpened,
        EventType.OPERATION_CLOSED: OperationClosed,
    } == DATA_MODELS


@pytest.mark.parametrize("type_", list(EventType), ids=str)
def test_a_valid_event_of_every_type_gives_its_typed_data(type_: EventType) -> None:
    event = CloudEvent.model_validate(raw(type_))
    assert event.type is type_
    assert type(event.data) is DATA_MODELS[type_]
    assert event.datacontenttype == "application/json"


@pytest.mark.parametrize("type_", list(EventType), ids=str)
def test_every_type_round_trips(type_: EventType) -> None:
    event = CloudEvent.model_validate(raw(type_))
    assert CloudEvent.model_validate(event.model_dump(mode="json", exclude_none=True)) == event
    assert CloudEvent.model_validate(event.model_dump()) == event
    assert CloudEvent.from_json(event.to_json()) == event
    assert CloudEvent.from_json(event.to_json().decode()) == event


def test_to_json_is_compact_without_nulls_and_uses_the_wire_names() -> None:
    event = CloudEvent.model_validate(raw(EventType.ALERT_RAISED, dataschema=None))
    wire = event.to_json()
    doc = json.loads(wire)
    assert wire == json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    assert "dataschema" not in doc
    assert "releasableto" not in doc
    assert doc["data"]["window"] == {"from": "2024-05-01T10:00:00+05:00", "until": T1}
    assert doc["time"] == T0


def test_utc_times_are_written_rfc3339() -> None:
    event = CloudEvent.model_validate(raw(EventType.ALERT_CANCELLED, time="2024-05-01T05:00:00Z"))
    assert json.loads(event.to_json())["time"] == "2024-05-01T05:00:00Z"


def test_the_design_factories_are_valid() -> None:
    alert = CloudEvent.model_validate(factories.alert())
    assert isinstance(alert.data, AlertRaised)
    assert alert.unit == "BLO-OYBEK"
    seizure = CloudEvent.model_validate(factories.seizure())
    assert isinstance(seizure.data, SeizureReported)
    assert (seizure.data.drugs[0].quantity, seizure.data.drugs[0].measure) == (20.032, "kg")


def test_events_are_immutable() -> None:
    event = CloudEvent.model_validate(raw(EventType.ALERT_RAISED))
    with pytest.raises(ValidationError, match="frozen"):
        event.tlp = Tlp.RED  # type: ignore[misc]
    assert isinstance(event.data, AlertRaised)
    assert isinstance(event.data.route, tuple)
    assert hash(event) == hash(CloudEvent.model_validate(raw(EventType.ALERT_RAISED)))


def test_built_from_models_by_name() -> None:
    at = datetime(2024, 5, 1, 5, tzinfo=UTC)
    data = AlertDelivered(
        alert_id="a-1",
        alert_source="BLO-OYBEK",
        recipient="NIAC-UZ",
        reasons=(Reason.COORDINATOR,),
        view=View.FULL,
        delivered_at=at,
    )
    event = CloudEvent(
        specversion="1.0",
        id="delivered/a-1/NIAC-UZ",
        source="/liaison/notifier",
        type=EventType.ALERT_DELIVERED,
        time=at,
        subject="a-1",
        data=data,
    )
    assert event.data is data
    assert event.unit is None
    window = Window(from_=at, until=at + timedelta(hours=1))
    assert window.model_dump(mode="json") == {
        "from": "2024-05-01T05:00:00Z",
        "until": "2024-05-01T06:00:00Z",
    }


def test_data_of_another_type_is_refused() -> None:
    cancelled = AlertCancelled(reason="false alarm")
    payload = {**raw(EventType.ALERT_CLOSED), "data": cancelled}
    assert locs(payload) == [("data",)]


# --- refused, and where -------------------------------------------------------------------


def test_unknown_envelope_attribute_is_refused() -> None:
    (error,) = errors(raw(EventType.ALERT_RAISED, colour="red"))
    assert (error["loc"], error["type"]) == (("colour",), "extra_forbidden")


def test_unknown_data_field_is_refused() -> None:
    data = {**DATA[EventType.ALERT_RAISED], "colour": "red"}
    (error,) = errors(raw(EventType.ALERT_RAISED, data))
    assert (error["loc"], error["type"]) == (("data", "colour"), "extra_forbidden")


def test_unknown_nested_field_is_refused() -> None:
    data = {**DATA[EventType.SEIZURE_REPORTED], "location": {"unit": "IMT-GULISTAN", "x": 1}}
    assert locs(raw(EventType.SEIZURE_REPORTED, data)) == [("data", "location", "x")]


@pytest.mark.parametrize("name", ["specversion", "id", "source", "type", "time", "data"])
def test_missing_envelope_attribute_is_located(name: str) -> None:
    payload = raw(EventType.ALERT_CANCELLED)
    del payload[name]
    (error,) = errors(payload)
    assert (error["loc"], error["type"]) == ((name,), "missing")


def test_missing_data_field_is_located() -> None:
    data = {"severity": "urgent"}
    (error,) = errors(raw(EventType.ALERT_RAISED, data))
    assert (error["loc"], error["type"]) == (("data", "summary"), "missing")


def test_data_errors_are_located_under_data() -> None:
    data = {"occurred_at": T0, "drugs": [{"substance": "heroin", "quantity": -5, "measure": "kg"}]}
    (error,) = errors(raw(EventType.SEIZURE_REPORTED, data))
    assert error["loc"] == ("data", "drugs", 0, "quantity")
    assert error["type"] == "greater_than"


def test_data_errors_are_located_under_data_from_json_too() -> None:
    data = {"occurred_at": T0, "drugs": [{"substance": "heroin", "quantity": "x", "measure": "g"}]}
    with pytest.raises(ValidationError) as caught:
        CloudEvent.from_json(json.dumps(raw(EventType.SEIZURE_REPORTED, data)))
    assert [e["loc"] for e in caught.value.errors()] == [("data", "drugs", 0, "quantity")]


def test_every_error_is_reported_at_once() -> None:
    payload = raw(EventType.ALERT_RAISED, {"severity": "soon"}, time="yesterday", tlp="pink")
    assert sorted(map(str, locs(payload))) == sorted(
        map(str, [("time",), ("tlp",), ("data", "severity"), ("data", "summary")])
    )


def test_invalid_json_is_a_validation_error() -> None:
    with pytest.raises(ValidationError) as caught:
        CloudEvent.from_json(b"{not json")
    assert caught.value.errors()[0]["type"] == "json_invalid"


def test_not_an_object_is_refused() -> None:
    assert errors([1, 2])[0]["type"] == "model_type"


@pytest.mark.parametrize("type_", list(EventType), ids=str)
def test_invalid_type_reports_the_type_only(type_: EventType) -> None:
    assert locs(raw(type_, type="alert.rumoured")) == [("type",)]


# --- times ----------------------------------------------------------------------------------


def test_naive_time_is_refused() -> None:
    (error,) = errors(raw(EventType.ALERT_CANCELLED, time="2024-05-01T10:00:00"))
    assert (error["loc"], error["type"]) == (("time",), "timezone_aware")


def test_naive_data_time_is_refused() -> None:
    data = {**DATA[EventType.SEIZURE_REPORTED], "occurred_at": "2024-05-01T10:00:00"}
    assert locs(raw(EventType.SEIZURE_REPORTED, data)) == [("data", "occurred_at")]


def test_numeric_time_is_refused() -> None:
    assert locs(raw(EventType.ALERT_CANCELLED, time=1714536000)) == [("time",)]


def test_window_must_end_after_it_starts() -> None:
    for until in (T0, "2024-05-01T09:00:00+05:00"):
        data = {**DATA[EventType.ALERT_RAISED], "window": {"from": T0, "until": until}}
        (error,) = errors(raw(EventType.ALERT_RAISED, data))
        assert error["loc"] == ("data", "window", "until")
        assert "after" in error["msg"]


def test_window_accepts_its_field_name_too() -> None:
    data = {**DATA[EventType.ALERT_RAISED], "window": {"from_": T0, "until": T1}}
    event = CloudEvent.model_validate(raw(EventType.ALERT_RAISED, data))
    assert isinstance(event.data, AlertRaised)
    assert event.data.window is not None
    assert event.data.window.from_ == datetime.fromisoformat(T0)
    assert "from" in json.loads(event.to_json())["data"]["window"]


# --- sources, types, subjects --------------------------------------------------------------


@pytest.mark.parametrize("type_", sorted(SYSTEM_TYPES), ids=str)
def test_system_types_from_a_unit_are_refused(type_: EventType) -> None:
    (error,) = errors(raw(type_, source="/units/BLO-OYBEK"))
    assert error["loc"] == ("type",)
    assert "/liaison/" in error["msg"]


@pytest.mark.parametrize("type_", sorted(AGENCY_TYPES), ids=str)
def test_agency_types_from_the_system_are_refused(type_: EventType) -> None:
    (error,) = errors(raw(type_, source="/liaison/notifier"))
    assert error["loc"] == ("type",)
    assert "/units/" in error["msg"]


@pytest.mark.parametrize(
    "source", ["/units/blo-oybek", "/units/", "units/BLO-OYBEK", "/liaison/", "/other/x", ""]
)
def test_malformed_sources_are_refused(source: str) -> None:
    assert locs(raw(EventType.ALERT_RAISED, source=source)) == [("source",)]


def test_unit_is_the_source_unit() -> None:
    assert CloudEvent.model_validate(raw(EventType.ALERT_RAISED)).unit == "BLO-OYBEK"
    assert CloudEvent.model_validate(raw(EventType.ALERT_DELIVERED)).unit is None


@pytest.mark.parametrize("type_", sorted(NEEDS_SUBJECT), ids=str)
def test_alert_changes_need_a_subject(type_: EventType) -> None:
    payload = raw(type_)
    del payload["subject"]
    (error,) = errors(payload)
    assert (error["loc"], error["type"]) == (("subject",), "subject_required")


def test_other_types_need_no_subject() -> None:
    payload = raw(EventType.ALERT_RAISED)
    del payload["subject"]
    assert CloudEvent.model_validate(payload).subject is None


@pytest.mark.parametrize("bad", ["", "a\nb", "tab\there", "x" * 257])
def test_ids_are_short_and_printable(bad: str) -> None:
    assert locs(raw(EventType.ALERT_RAISED, id=bad)) == [("id",)]


# --- handling extensions --------------------------------------------------------------------


def test_tlp_defaults_to_amber() -> None:
    assert CloudEvent.model_validate(raw(EventType.ALERT_RAISED)).tlp is Tlp.AMBER


@pytest.mark.parametrize(
    ("given", "tlp"), [("red", Tlp.RED), ("TLP:AMBER+STRICT", Tlp.AMBER_STRICT)]
)
def test_tlp_labels(given: str, tlp: Tlp) -> None:
    assert CloudEvent.model_validate(raw(EventType.ALERT_RAISED, tlp=given)).tlp is tlp


def test_releasableto_is_normalised() -> None:
    payload = raw(EventType.ALERT_RAISED, releasableto=" uz, tj,UZ ,Kz", piireleasableto="uz")
    event = CloudEvent.model_validate(payload)
    assert event.releasableto == "UZ,TJ,KZ"
    assert event.releasable_countries == frozenset({"UZ", "TJ", "KZ"})
    assert event.piireleasableto == "UZ"
    assert event.pii_countries == frozenset({"UZ"})


def test_absent_releasability_is_none() -> None:
    event = CloudEvent.model_validate(raw(EventType.ALERT_RAISED))
    assert (event.releasable_countries, event.pii_countries) == (None, None)


@pytest.mark.parametrize("bad", ["UZB", "UZ,T1", "UZ,,TJ", "", " ", "ÜZ"])
@pytest.mark.parametrize("name", ["releasableto", "piireleasableto"])
def test_bad_releasability_is_refused(name: str, bad: str) -> None:
    assert locs(raw(EventType.ALERT_RAISED, **{name: bad})) == [(name,)]


# --- data rules -----------------------------------------------------------------------------


def test_country_codes_are_upper_cased() -> None:
    event = CloudEvent.model_validate(raw(EventType.SEIZURE_REPORTED))
    assert isinstance(event.data, SeizureReported)
    assert event.data.route == ("TJ", "UZ", "KZ")
    assert event.data.persons is not None
    assert event.data.persons[0].nationality == "TJ"


@pytest.mark.parametrize("bad", ["UZB", "U", "12", "U Z", ""])
def test_bad_country_code_is_refused(bad: str) -> None:
    data = {**DATA[EventType.ALERT_RAISED], "route": ["TJ", bad]}
    (error,) = errors(raw(EventType.ALERT_RAISED, data))
    assert error["loc"] == ("data", "route", 1)
    assert "ISO 3166" in error["msg"]


@pytest.mark.parametrize("bad", ["blo-oybek", "B", "BLO OYBEK", "-BLO"])
def test_bad_unit_id_is_refused(bad: str) -> None:
    data = {**DATA[EventType.ALERT_RAISED], "recipients": [bad]}
    assert locs(raw(EventType.ALERT_RAISED, data)) == [("data", "recipients", 0)]


def test_seizure_fields_are_normalised() -> None:
    event = CloudEvent.model_validate(raw(EventType.SEIZURE_REPORTED))
    assert isinstance(event.data, SeizureReported)
    (drug,) = event.data.drugs
    assert (drug.substance, drug.quantity, drug.measure) == ("heroin", 20.032, "kg")
    assert (drug.reported_quantity, drug.reported_measure) == (20032, "g")
    assert event.data.agencies == ("MIA", "SSS", "SCC", "BORDER-TROOPS")


def test_a_seizure_needs_a_drug() -> None:
    data = {**DATA[EventType.SEIZURE_REPORTED], "drugs": []}
    assert locs(raw(EventType.SEIZURE_REPORTED, data)) == [("data", "drugs")]


def test_coordinates_go_together() -> None:
    data = {**DATA[EventType.SEIZURE_REPORTED], "location": {"lat": 40.5}}
    assert locs(raw(EventType.SEIZURE_REPORTED, data)) == [("data", "location", "lon")]


def test_coordinates_are_on_earth() -> None:
    data = {**DATA[EventType.SEIZURE_REPORTED], "location": {"lat": 91, "lon": 181}}
    assert locs(raw(EventType.SEIZURE_REPORTED, data)) == [
        ("data", "location", "lat"),
        ("data", "location", "lon"),
    ]


def test_an_update_carries_a_change() -> None:
    (error,) = errors(raw(EventType.ALERT_UPDATED, {}))
    assert error["loc"] == ("data",)
    assert "at least one" in error["msg"]


def test_the_non_nominal_view_of_an_update_is_valid() -> None:
    event = CloudEvent.model_validate(raw(EventType.ALERT_UPDATED, {"persons_count": 2}))
    assert isinstance(event.data, AlertUpdated)
    assert (event.data.persons, event.data.persons_count) == (None, 2)


@pytest.mark.parametrize("type_", [EventType.ALERT_RAISED, EventType.SEIZURE_REPORTED], ids=str)
def test_persons_and_their_count_are_exclusive(type_: EventType) -> None:
    data = {**DATA[type_], "persons": [{"name": "A"}], "persons_count": 1}
    assert locs(raw(type_, data)) == [("data", "persons_count")]


def test_delivery_needs_a_reason() -> None:
    data = {**DATA[EventType.ALERT_DELIVERED], "reasons": []}
    assert locs(raw(EventType.ALERT_DELIVERED, data)) == [("data", "reasons")]


def test_ending_reason_is_bounded() -> None:
    for reason in ("", "   ", "x" * 2001):
        assert locs(raw(EventType.ALERT_CLOSED, {"reason": reason})) == [("data", "reason")]
