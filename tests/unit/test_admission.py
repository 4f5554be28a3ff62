"""Who may do what to which alert: an alert is its origin's; only its originator changes it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from schemas.alerts import AlertRef
from schemas.topology import default_topology
from services.core.bus import Entry
from services.notifier.admission import UnknownAlert
from services.notifier.batches import handle_alert_entries
from services.notifier.handlers import NotifierDeps
from tests import factories
from tests.unit.fakes import FakeDeadLetters, FakeInbox, FakePublisher


@pytest.fixture
def deps() -> NotifierDeps:
    return NotifierDeps(default_topology(), FakeInbox(), FakePublisher())


def _entries(*events: dict[str, Any]) -> list[Entry]:
    return [Entry("alerts", f"{i}-0", json.dumps(ev).encode()) for i, ev in enumerate(events)]


def _closed(alert: dict[str, Any], unit: str = "BLO-OYBEK") -> dict[str, Any]:
    return factories.event("alert.closed", unit, {"reason": "seized"},
                           subject=alert["id"], releasableto="UZ,TJ")  # fmt: skip


def _delivered(deps: NotifierDeps) -> dict[tuple[str, AlertRef], dict[str, Any]]:
    assert isinstance(deps.inbox, FakeInbox)
    return deps.inbox.deliveries


def _changes(deps: NotifierDeps) -> int:
    assert isinstance(deps.inbox, FakeInbox)
    return sum(len(c) for c in deps.inbox.changes.values())


async def test_a_raise_and_its_closure_in_one_batch_are_both_acted_on(deps: NotifierDeps) -> None:
    alert, dead = factories.alert(), FakeDeadLetters()
    await handle_alert_entries(_entries(alert, _closed(alert)), deps, dead)
    assert len(_delivered(deps)) == 4
    assert _changes(deps) == 4
    assert dead.entries == []


async def test_an_id_another_unit_used_first_is_still_a_new_alert(deps: NotifierDeps) -> None:
    first, dead = factories.alert("BLO-AYRITOM"), FakeDeadLetters()
    await handle_alert_entries(_entries(first), deps, dead)
    second = factories.alert(id=first["id"])  # BLO-OYBEK's, after BLO-AYRITOM took the id
    await handle_alert_entries(_entries(second), deps, dead)
    assert dead.entries == []
    oybek = {
        unit for unit, alert in _delivered(deps) if alert == AlertRef("BLO-OYBEK", first["id"])
    }
    assert oybek == {"IMT-TASHKENT", "IMT-GULISTAN", "BLO-FOTEHOBOD", "NIAC-UZ"}
    assert ("NIAC-UZ", AlertRef("BLO-AYRITOM", first["id"])) in _delivered(deps)  # both kept


async def test_each_originator_closes_its_own_alert_of_a_shared_id(deps: NotifierDeps) -> None:
    first, dead = factories.alert("BLO-AYRITOM"), FakeDeadLetters()
    second = factories.alert(id=first["id"])
    await handle_alert_entries(_entries(first, second, _closed(second)), deps, dead)
    assert isinstance(deps.inbox, FakeInbox)
    closed = {key for key, changes in deps.inbox.changes.items() if changes}
    assert {alert for _, alert in closed} == {AlertRef("BLO-OYBEK", first["id"])}
    assert len(closed) == 4
    assert dead.entries == []


async def test_the_same_alert_delivered_again_is_not_refused(deps: NotifierDeps) -> None:
    alert, dead = factories.alert(), FakeDeadLetters()
    await handle_alert_entries(_entries(alert), deps, dead)
    await handle_alert_entries(_entries(alert), deps, dead)
    assert dead.entries == []
    assert len(_delivered(deps)) == 4


async def test_only_the_originator_may_close_an_alert(deps: NotifierDeps) -> None:
    # the race past ingest's check: another unit's closure reaches the notifier
    alert, dead = factories.alert(), FakeDeadLetters()
    await handle_alert_entries(_entries(alert, _closed(alert, "BLO-AYRITOM")), deps, dead)
    assert _changes(deps) == 0
    [(_, reason)] = dead.entries
    assert reason == (
        f"notifier: alert.closed from BLO-AYRITOM: alert {alert['id']!r} was raised by "
        "BLO-OYBEK: only BLO-OYBEK may change it"
    )


async def test_a_change_of_its_own_alert_still_on_its_way_is_held_back(
    deps: NotifierDeps,
) -> None:
    taken, dead = factories.alert(), FakeDeadLetters()
    await handle_alert_entries(_entries(taken), deps, dead)
    own = factories.alert("BLO-AYRITOM", id=taken["id"])
    assert isinstance(deps.inbox, FakeInbox)
    deps.inbox.published.add(AlertRef("BLO-AYRITOM", taken["id"]))  # another notifier has it
    with pytest.raises(UnknownAlert, match="never delivered"):
        await handle_alert_entries(_entries(_closed(own, "BLO-AYRITOM")), deps, dead)
    assert dead.entries == []


async def test_a_change_of_an_alert_not_delivered_yet_is_held_back(deps: NotifierDeps) -> None:
    alert, other, dead = factories.alert(), factories.alert(), FakeDeadLetters()
    with pytest.raises(UnknownAlert, match="never delivered"):
        await handle_alert_entries(_entries(_closed(alert), other), deps, dead)
    assert {a.id for _, a in _delivered(deps)} == {other["id"]}  # the rest of the batch was done
    assert dead.entries == []
    await handle_alert_entries(_entries(alert), deps, dead)  # e.g. by another notifier process
    await handle_alert_entries(_entries(_closed(alert), other), deps, dead)  # the claimer's retry
    assert _changes(deps) == 4
