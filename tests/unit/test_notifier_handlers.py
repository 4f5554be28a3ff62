"""The notifier's handlers against in-memory ports."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import pytest

from schemas.alerts import AlertRef
from schemas.events import CloudEvent
from schemas.receipts import AlertDelivered
from schemas.topology import default_topology
from schemas.vocabulary import EventType
from services.core.bus import Entry
from services.notifier.acknowledgement import Acknowledger, acknowledge
from services.notifier.batches import handle_alert_entries
from services.notifier.changes import pass_on_change
from services.notifier.handlers import NotifierDeps, fan_out, render, system_event
from tests import factories
from tests.unit.fakes import FakeDeadLetters, FakeInbox, FakePublisher


def _ref(alert: CloudEvent) -> AlertRef:
    assert alert.alert_ref is not None
    return alert.alert_ref


@pytest.fixture
def deps() -> NotifierDeps:
    return NotifierDeps(default_topology(), FakeInbox(publisher := FakePublisher()), publisher)


def _inbox(deps: NotifierDeps) -> FakeInbox:
    assert isinstance(deps.inbox, FakeInbox)
    return deps.inbox


def _published(deps: NotifierDeps) -> list[CloudEvent]:
    assert isinstance(deps.publisher, FakePublisher)
    return deps.publisher.events


async def test_fan_out_delivers_each_view_and_emits_one_receipt_each(deps: NotifierDeps) -> None:
    alert = CloudEvent.model_validate(factories.alert())
    recipients = await fan_out(alert, deps)
    assert {r.unit for r in recipients} == {
        "IMT-TASHKENT",
        "IMT-GULISTAN",
        "BLO-FOTEHOBOD",
        "NIAC-UZ",
    }
    abroad = _inbox(deps).deliveries[("BLO-FOTEHOBOD", _ref(alert))]
    assert "persons" not in abroad["event"]["data"]
    assert abroad["event"]["data"]["persons_count"] == 1
    home = _inbox(deps).deliveries[("IMT-GULISTAN", _ref(alert))]
    assert home["event"]["data"]["persons"][0]["name"] == "Example Driver"
    receipts = _published(deps)
    assert [r.type for r in receipts] == [EventType.ALERT_DELIVERED] * 4
    assert all(isinstance(r.data, AlertDelivered) and r.subject == alert.id for r in receipts)
    # built without validation: each must still be exactly what validation would accept
    assert all(CloudEvent.from_json(r.to_json()).to_json() == r.to_json() for r in receipts)


@pytest.mark.parametrize(
    "extra",
    [{}, {"tlp": "amber", "piireleasableto": "UZ"}, {"tlp": "green", "piireleasableto": "TJ"}],
)
def test_receipts_are_encoded_as_the_model_would_encode_them(
    deps: NotifierDeps, extra: dict[str, str]
) -> None:
    alert = CloudEvent.model_validate(factories.alert(**extra))
    at = datetime.now(UTC)
    rendered = render(alert, deps, at)
    expected = []
    for recipient in rendered.recipients:
        data = AlertDelivered(
            alert_id=alert.id, alert_source="BLO-OYBEK", recipient=recipient.unit,
            reasons=recipient.reasons, view=recipient.view, delivered_at=at,
        )  # fmt: skip
        receipt = system_event(
            EventType.ALERT_DELIVERED, f"BLO-OYBEK/{alert.id}/{recipient.unit}", alert, data, at
        )
        expected.append(CloudEvent.model_validate(receipt.model_dump()).to_json())
    assert [r.payload for r in rendered.receipts] == expected


async def test_fan_out_twice_changes_nothing(deps: NotifierDeps) -> None:
    alert = CloudEvent.model_validate(factories.alert())
    await fan_out(alert, deps)
    before = copy.deepcopy(_inbox(deps).deliveries)
    await fan_out(alert, deps)
    assert _inbox(deps).deliveries == before
    assert len(_published(deps)) == 4


async def test_changes_reach_exactly_the_recipients(deps: NotifierDeps) -> None:
    alert = CloudEvent.model_validate(factories.alert())
    await fan_out(alert, deps)
    update = factories.event(
        "alert.updated", "BLO-OYBEK",
        {"persons": [{"name": "Second Person"}, {"name": "Third Person"}]},
        subject=alert.id, releasableto="UZ,TJ",
    )  # fmt: skip
    assert await pass_on_change(CloudEvent.model_validate(update), deps) == 4
    abroad = next(iter(_inbox(deps).changes[("BLO-FOTEHOBOD", _ref(alert))].values()))
    assert abroad["data"] == {"persons_count": 2}
    home = next(iter(_inbox(deps).changes[("NIAC-UZ", _ref(alert))].values()))
    assert len(home["data"]["persons"]) == 2


async def test_acknowledge_is_idempotent(deps: NotifierDeps) -> None:
    alert = CloudEvent.model_validate(factories.alert())
    await fan_out(alert, deps)
    first = await acknowledge(
        "IMT-GULISTAN", _ref(alert), Acknowledger("gulistan-duty", officer="Lt. A"), deps
    )
    second = await acknowledge(
        "IMT-GULISTAN", _ref(alert), Acknowledger("other", officer="Lt. B", note="late"), deps
    )
    assert first == second
    assert first is not None
    assert (first["acknowledged_by"], first["officer"]) == ("gulistan-duty", "Lt. A")
    acks = [e for e in _published(deps) if e.type is EventType.ALERT_ACKNOWLEDGED]
    assert len(acks) == 1


async def test_acknowledging_what_was_never_received_is_none(deps: NotifierDeps) -> None:
    assert (
        await acknowledge(
            "IMT-GULISTAN",
            AlertRef("BLO-OYBEK", "no-such-alert"),
            Acknowledger("gulistan-duty"),
            deps,
        )
        is None
    )
    assert _published(deps) == []


async def test_a_bad_entry_is_dead_lettered_and_the_rest_proceed(deps: NotifierDeps) -> None:
    dead = FakeDeadLetters()
    good = factories.alert()
    entries = [
        Entry("alerts", "1-0", b"{not json"),
        Entry("alerts", "2-0", json.dumps(good).encode()),
    ]
    await handle_alert_entries(entries, deps, dead)
    assert [e.entry_id for e, _ in dead.entries] == ["1-0"]
    assert "not a valid event" in dead.entries[0][1]
    assert len(_published(deps)) == 4
