"""What the ledger keeps of a stream entry: the envelope's columns and the canonical text."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.events import CloudEvent
from schemas.vocabulary import EventType
from services.core.bus import Entry
from services.ledger.chain import event_json
from services.ledger.handlers import prepare_entries
from services.ledger.records import (
    CANONICAL_PREFIX,
    Record,
    record_of_event,
    record_of_payload,
)
from tests.unit.fakes import FakeDeadLetters
from tests.unit.test_events import raw


def canonical(doc: Any) -> bytes:
    """The documented canonical form (docs/ledger.md)."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@pytest.mark.parametrize("type_", list(EventType), ids=str)
def test_the_published_text_is_canonical_and_stored_verbatim(type_: EventType) -> None:
    event = CloudEvent.model_validate(raw(type_))
    wire = event.to_json()
    assert wire == canonical(json.loads(wire))
    assert wire.startswith(CANONICAL_PREFIX)
    record = record_of_payload(wire)
    assert record.text.encode() == wire
    assert record == record_of_event(event)
    assert record.text == event_json(event)


def test_non_ascii_text_is_kept_as_utf8() -> None:
    event = CloudEvent.model_validate(raw(EventType.ALERT_CANCELLED, data={"reason": "Ташкент"}))
    assert "Ташкент" in record_of_payload(event.to_json()).text


def test_the_indexed_columns() -> None:
    event = CloudEvent.model_validate(
        raw(EventType.ALERT_CANCELLED, time="2024-05-01T10:00:00+05:00")
    )
    assert record_of_payload(event.to_json()) == Record(
        source="/units/BLO-OYBEK", event_id="alert.cancelled-1", type="alert.cancelled",
        subject="alert-1", event_time="2024-05-01T05:00:00.000000Z", text=event_json(event),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("time", "utc"),
    [
        ("2024-05-01T05:00:00Z", "2024-05-01T05:00:00.000000Z"),
        ("2024-05-01T05:00:00.5+05:00", "2024-05-01T00:00:00.500000Z"),
        ("2024-05-01T00:30:00.123456-01:00", "2024-05-01T01:30:00.123456Z"),
    ],
)
def test_event_time_is_kept_in_utc(time: str, utc: str) -> None:
    payload = canonical({**raw(EventType.SEIZURE_REPORTED), "time": time})
    assert record_of_payload(payload).event_time == utc


def test_text_not_in_canonical_form_is_validated_in_full_and_re_serialised() -> None:
    event = CloudEvent.model_validate(raw(EventType.SEIZURE_REPORTED))
    published = json.dumps(raw(EventType.SEIZURE_REPORTED), indent=1).encode()  # unsorted, spaced
    assert record_of_payload(published).text == event_json(event)
    with pytest.raises(ValidationError) as caught:
        record_of_payload(json.dumps(raw(EventType.SEIZURE_REPORTED, data={})).encode())
    assert ("data", "occurred_at") in [e["loc"] for e in caught.value.errors()]


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"source": "units/x"}, ("source",)),
        ({"id": ""}, ("id",)),
        ({"time": "2024-05-01T10:00:00"}, ("time",)),
        ({"time": "2024-13-01T10:00:00Z"}, ("time",)),
        ({"time": 1714539600}, ("time",)),
        ({"type": "seizure.deleted"}, ("type",)),
        ({"specversion": "0.3"}, ("specversion",)),
        ({"subject": "a\nb"}, ("subject",)),
    ],
)
def test_canonical_text_with_a_bad_envelope_is_refused(
    change: dict[str, Any], where: tuple[str, ...]
) -> None:
    payload = canonical({**raw(EventType.SEIZURE_REPORTED), **change})
    assert payload.startswith(CANONICAL_PREFIX)
    with pytest.raises(ValidationError) as caught:
        record_of_payload(payload)
    assert [e["loc"] for e in caught.value.errors()] == [where]


async def test_entries_that_are_no_event_go_to_the_dead_letters_with_the_reason() -> None:
    good = CloudEvent.model_validate(raw(EventType.SEIZURE_REPORTED)).to_json()
    entries = [
        Entry("s", "1-0", good),
        Entry("s", "2-0", b"{not json"),
        Entry("s", "3-0", canonical({**raw(EventType.SEIZURE_REPORTED), "source": None})),
        Entry("s", "4-0", b"\xff\xfe"),
    ]
    dead = FakeDeadLetters()
    records = await prepare_entries(entries, dead)
    assert [r.text.encode() for r in records] == [good]
    assert [entry.entry_id for entry, _ in dead.entries] == ["2-0", "3-0", "4-0"]
    reasons = [reason for _, reason in dead.entries]
    assert all(reason.startswith("ledger: not a valid event: ") for reason in reasons)
    assert "Invalid JSON" in reasons[0]
    assert "source: " in reasons[1]
