"""One contract per port, run on every implementation: the in-memory fakes the unit tests use
(`tests/unit/fakes.py`) and the Redis adapters the product runs on, on a real server.

A unit test that passes on a fake proves something only if the fake behaves as the real
adapter does; these tests hold both to the same observable behaviour, through the ports'
methods and the notifier's handlers only (never a fake's dictionaries or a Redis key)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from schemas.alerts import AlertRef
from schemas.events import CloudEvent
from schemas.topology import default_topology
from services.core.bus import Entry, Publisher, RedisDeadLetters, RedisPublisher
from services.core.streams import DEAD_LETTERS
from services.notifier.acknowledgement import Acknowledger, acknowledge
from services.notifier.changes import pass_on_change
from services.notifier.escalation import escalate_due
from services.notifier.handlers import Inbox, NotifierDeps, fan_out
from services.notifier.inbox import RedisInbox
from tests import factories
from tests.unit.fakes import FakeDeadLetters, FakeInbox, FakePublisher

UNITS = {"IMT-TASHKENT", "IMT-GULISTAN", "BLO-FOTEHOBOD", "NIAC-UZ"}
"""Who receives the factories' alert at BLO-OYBEK."""


@dataclass
class Ports:
    inbox: Inbox
    publisher: Publisher
    clock: list[datetime]

    def deps(self) -> NotifierDeps:
        return NotifierDeps(
            default_topology(), self.inbox, self.publisher, clock=lambda: self.clock[0]
        )


@pytest.fixture(params=["fake", "redis"])
async def ports(request: pytest.FixtureRequest, redis: Redis) -> AsyncIterator[Ports]:
    clock = [datetime(2026, 12, 7, 3, 0, tzinfo=UTC)]
    if request.param == "fake":
        publisher = FakePublisher()
        yield Ports(FakeInbox(publisher), publisher, clock)
    else:
        yield Ports(RedisInbox(redis), RedisPublisher(redis), clock)


def _alert(**extra: str) -> tuple[CloudEvent, AlertRef]:
    alert = CloudEvent.model_validate(factories.alert(**extra))
    assert alert.alert_ref is not None
    return alert, alert.alert_ref


async def test_a_fan_out_is_delivered_once_to_each_recipient(ports: Ports) -> None:
    alert, ref = _alert()
    deps = ports.deps()
    await fan_out(alert, deps)
    first = await ports.inbox.get("IMT-GULISTAN", ref)
    ports.clock[0] += timedelta(minutes=1)
    await fan_out(alert, deps)  # redelivered: the first delivery stays as it was
    assert await ports.inbox.get("IMT-GULISTAN", ref) == first
    assert first is not None
    assert first["state"] == "open"
    assert not first["escalated"]
    assert set(await ports.inbox.recipients(ref)) == UNITS
    assert (await ports.inbox.recipients(ref))["BLO-FOTEHOBOD"] == "non-nominal"
    assert await ports.inbox.received("IMT-GULISTAN", ref.id) == []  # not in the register
    await ports.inbox.claim_alerts([ref])  # as admission does before every fan-out
    assert await ports.inbox.received("IMT-GULISTAN", ref.id) == [ref]
    assert await ports.inbox.received("IMT-NUKUS", ref.id) == []
    assert await ports.inbox.get("IMT-NUKUS", ref) is None


async def test_an_acknowledgement_is_made_once_and_stops_the_escalation(ports: Ports) -> None:
    alert, ref = _alert()
    deps = ports.deps()
    await fan_out(alert, deps)
    first = await acknowledge("IMT-GULISTAN", ref, Acknowledger("gulistan-duty"), deps)
    again = await acknowledge("IMT-GULISTAN", ref, Acknowledger("someone-else"), deps)
    assert first is not None
    assert again == first
    assert first["acknowledged_by"] == "gulistan-duty"
    stored = await ports.inbox.get("IMT-GULISTAN", ref)
    assert stored is not None
    assert stored["acknowledged_by"] == "gulistan-duty"
    ports.clock[0] += timedelta(days=1)  # every deadline past
    due = await ports.inbox.due(ports.clock[0].timestamp())
    assert sorted(due) == sorted((unit, ref) for unit in UNITS - {"IMT-GULISTAN"})
    assert await escalate_due(deps) == len(UNITS) - 1  # all but the acknowledged one
    escalated = await ports.inbox.get("IMT-TASHKENT", ref)
    assert escalated is not None
    assert escalated["escalated"]
    stored = await ports.inbox.get("IMT-GULISTAN", ref)
    assert stored is not None
    assert not stored["escalated"]
    assert await escalate_due(deps) == 0  # settled: each escalated once
    assert await ports.inbox.due(ports.clock[0].timestamp()) == []
    unknown = AlertRef("BLO-OYBEK", "never-raised")
    assert await acknowledge("IMT-GULISTAN", unknown, Acknowledger("gulistan-duty"), deps) is None


async def test_a_closure_reaches_every_recipient_and_stops_the_escalation(ports: Ports) -> None:
    alert, ref = _alert()
    deps = ports.deps()
    await fan_out(alert, deps)
    closed = factories.event("alert.closed", "BLO-OYBEK", {"reason": "seized"},
                             subject=alert.id, releasableto="UZ,TJ")  # fmt: skip
    assert await pass_on_change(CloudEvent.model_validate(closed), deps) == len(UNITS)
    for unit in UNITS:
        stored = await ports.inbox.get(unit, ref)
        assert stored is not None
        assert stored["state"] == "closed"
    ports.clock[0] += timedelta(days=1)
    assert await escalate_due(deps) == 0


async def test_the_register_tells_whose_alert_an_id_is(ports: Ports) -> None:
    mine, other = AlertRef("BLO-OYBEK", "BT-1"), AlertRef("BLO-FOTEHOBOD", "BT-1")
    await ports.inbox.claim_alerts([mine])
    await ports.inbox.claim_alerts([mine, other])  # claiming again adds nothing
    assert await ports.inbox.alert_origins(["BT-1", "BT-2"]) == [
        ("BLO-OYBEK", "BLO-FOTEHOBOD"),
        (),
    ]
    stranger = AlertRef("IMT-TERMEZ", "BT-1")
    assert await ports.inbox.owners_instead([mine, stranger]) == [
        (),
        ("BLO-OYBEK", "BLO-FOTEHOBOD"),
    ]


async def test_a_publisher_keeps_one_event_per_source_and_id(ports: Ports) -> None:
    alert, _ = _alert()
    assert await ports.publisher.publish([alert]) == [True]
    copy = CloudEvent.model_validate({**factories.alert(), "id": alert.id, "source": alert.source})
    assert await ports.publisher.publish([copy, alert]) == [False, False]
    elsewhere = CloudEvent.model_validate({**factories.alert(), "id": alert.id,
                                           "source": "/units/BLO-AYRITOM"})  # fmt: skip
    assert await ports.publisher.publish([elsewhere]) == [True]


@pytest.mark.parametrize("kind", ["fake", "redis"])
async def test_a_dead_letter_is_kept_with_its_reason(kind: str, redis: Redis) -> None:
    entry = Entry("{liaison}:stream:alerts", "1-0", b"{}")
    letters = FakeDeadLetters() if kind == "fake" else RedisDeadLetters(redis)
    await letters.put(entry, "alert 'x' was never raised")
    if isinstance(letters, FakeDeadLetters):
        kept = [(e.stream, e.entry_id, reason) for e, reason in letters.entries]
    else:
        kept = [
            (f[b"origin"].decode(), f[b"entry_id"].decode(), f[b"reason"].decode())
            for _, f in await redis.xrange(DEAD_LETTERS)
        ]
    assert kept == [("{liaison}:stream:alerts", "1-0", "alert 'x' was never raised")]
