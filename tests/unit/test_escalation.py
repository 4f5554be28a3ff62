"""Escalation against in-memory ports and a controllable clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas.alerts import AlertRef
from schemas.events import CloudEvent
from schemas.receipts import AlertEscalated
from schemas.topology import default_topology
from schemas.vocabulary import EventType
from services.core.config import AckDeadlines
from services.notifier.acknowledgement import Acknowledger, acknowledge
from services.notifier.changes import pass_on_change
from services.notifier.escalation import escalate_due
from services.notifier.handlers import NotifierDeps, fan_out
from tests import factories
from tests.unit.fakes import FakeInbox, FakePublisher


def _ref(alert: CloudEvent) -> AlertRef:
    assert alert.alert_ref is not None
    return alert.alert_ref


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def deps(clock: Clock) -> NotifierDeps:
    deadlines = AckDeadlines(urgent=timedelta(minutes=10))
    return NotifierDeps(
        default_topology(),
        FakeInbox(publisher := FakePublisher()),
        publisher,
        deadlines,
        clock=clock,
    )


def _escalations(deps: NotifierDeps) -> list[CloudEvent]:
    assert isinstance(deps.publisher, FakePublisher)
    return [e for e in deps.publisher.events if e.type is EventType.ALERT_ESCALATED]


async def test_silence_past_the_deadline_escalates_once(deps: NotifierDeps, clock: Clock) -> None:
    alert = CloudEvent.model_validate(factories.alert())
    await fan_out(alert, deps)
    clock.now += timedelta(minutes=9)
    assert await escalate_due(deps) == 0
    clock.now += timedelta(minutes=2)
    assert await escalate_due(deps) == 4
    assert await escalate_due(deps) == 0
    events = _escalations(deps)
    assert sorted(e.data.unit for e in events if isinstance(e.data, AlertEscalated)) == [
        "BLO-FOTEHOBOD", "IMT-GULISTAN", "IMT-TASHKENT", "NIAC-UZ",
    ]  # fmt: skip
    inbox = deps.inbox
    assert isinstance(inbox, FakeInbox)
    assert set(inbox.notices["NIAC-UZ"]) == {
        f"IMT-GULISTAN/BLO-OYBEK/{alert.id}",
        f"IMT-TASHKENT/BLO-OYBEK/{alert.id}",
    }
    gulistan = inbox.escalations[("IMT-GULISTAN", _ref(alert))]
    assert gulistan["coordinators"] == ["NIAC-UZ"]
    assert "awaits acknowledgement by IMT-GULISTAN" in gulistan["reminder"]


async def test_acknowledged_or_closed_deliveries_do_not_escalate(
    deps: NotifierDeps, clock: Clock
) -> None:
    alert = CloudEvent.model_validate(factories.alert())
    await fan_out(alert, deps)
    await acknowledge(
        "IMT-GULISTAN", _ref(alert), Acknowledger("gulistan-duty", officer="Lt. A"), deps
    )
    closed = factories.event("alert.closed", "BLO-OYBEK", {"reason": "seized"}, subject=alert.id)
    clock.now += timedelta(minutes=5)
    await pass_on_change(CloudEvent.model_validate(closed), deps)
    clock.now += timedelta(hours=1)
    assert await escalate_due(deps) == 0
    assert _escalations(deps) == []


async def test_an_update_does_not_stop_the_clock(deps: NotifierDeps, clock: Clock) -> None:
    alert = CloudEvent.model_validate(factories.alert())
    await fan_out(alert, deps)
    update = factories.event(
        "alert.updated", "BLO-OYBEK", {"summary": "now two trucks"}, subject=alert.id
    )
    await pass_on_change(CloudEvent.model_validate(update), deps)
    clock.now += timedelta(minutes=11)
    assert await escalate_due(deps) == 4


async def test_a_crash_after_marking_is_finished_by_the_next_round(
    deps: NotifierDeps, clock: Clock
) -> None:
    """Marked escalated, then the process died before the notice and the event: still due."""
    alert = CloudEvent.model_validate(factories.alert())
    await fan_out(alert, deps)
    clock.now += timedelta(minutes=11)
    record = {"escalated_at": clock.now.isoformat(), "deadline": clock.now.isoformat(),
              "coordinators": ["NIAC-UZ"], "reminder": "r"}  # fmt: skip
    await deps.inbox.escalate("IMT-GULISTAN", _ref(alert), record)
    assert await escalate_due(deps) == 3  # the other three are new; Gulistan's is finished
    inbox = deps.inbox
    assert isinstance(inbox, FakeInbox)
    assert f"IMT-GULISTAN/BLO-OYBEK/{alert.id}" in inbox.notices["NIAC-UZ"]
    units = sorted(e.data.unit for e in _escalations(deps) if isinstance(e.data, AlertEscalated))
    assert units == ["BLO-FOTEHOBOD", "IMT-GULISTAN", "IMT-TASHKENT", "NIAC-UZ"]
    assert await escalate_due(deps) == 0
