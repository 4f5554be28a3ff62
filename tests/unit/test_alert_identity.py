"""An alert is (origin, id): ids in paths, ids' lengths, references, the ingest check."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

import pytest
from pydantic import ValidationError

from schemas.alerts import AlertRef
from schemas.events import CloudEvent
from services.core.alert_paths import path_segment
from services.core.alert_register import origins_of
from services.ingest.intake import foreign_changes
from services.notifier.lookup import origin_of
from tests import factories


def test_every_awkward_id_is_one_path_segment_that_decodes_to_it() -> None:
    for alert_id in factories.AWKWARD_IDS:
        segment = path_segment(alert_id)
        assert not {"/", "?", "#", " "} & set(segment), segment
        assert segment.strip(".") != ""  # never a dot segment a client would normalise away
        assert unquote(segment) == alert_id


def test_an_alert_and_its_changes_name_the_same_alert() -> None:
    raised = CloudEvent.model_validate(factories.alert(id="BT-2024/0091"))
    closed = CloudEvent.model_validate(
        factories.event("alert.closed", "BLO-OYBEK", {"reason": "x"}, subject="BT-2024/0091")
    )
    foreign = CloudEvent.model_validate(
        factories.event("alert.closed", "BLO-DUSTLIK", {"reason": "x"}, subject="BT-2024/0091")
    )
    assert raised.alert_ref == closed.alert_ref == AlertRef("BLO-OYBEK", "BT-2024/0091")
    assert foreign.alert_ref == AlertRef("BLO-DUSTLIK", "BT-2024/0091")  # not BLO-OYBEK's
    assert CloudEvent.model_validate(factories.seizure(subject="BT-2024/0091")).alert_ref is None
    assert str(raised.alert_ref) == "alert 'BT-2024/0091' of BLO-OYBEK"


def test_agency_ids_stay_within_256_characters_the_systems_may_be_longer() -> None:
    CloudEvent.model_validate(factories.alert(id="x" * 256))
    with pytest.raises(ValidationError) as caught:
        CloudEvent.model_validate(factories.alert(id="x" * 257))
    [error] = caught.value.errors()
    assert (error["loc"], error["msg"]) == (("id",), "String should have at most 256 characters")
    receipt = {
        "specversion": "1.0",
        "id": "acknowledged/" + "x" * 400,
        "source": "/liaison/notifier",
        "type": "alert.acknowledged",
        "time": "2026-01-01T00:00:00Z",
        "data": {"alert_id": "x", "unit": "NIAC-UZ", "acknowledged_at": "2026-01-01T00:00:00Z"},
    }
    CloudEvent.model_validate(receipt)
    with pytest.raises(ValidationError, match="at most 512"):
        CloudEvent.model_validate({**receipt, "id": "x" * 513})


@pytest.mark.parametrize("alert_id", ["line\u2028sep", "para\u2029sep", "tab\there", "c1\x85"])
def test_an_id_is_one_line(alert_id: str) -> None:
    with pytest.raises(ValidationError, match="control characters"):
        CloudEvent.model_validate(factories.alert(id=alert_id))


def test_register_values_and_sources() -> None:
    assert origins_of(b"/units/BLO-OYBEK /units/BLO-FOTEHOBOD") == ("BLO-OYBEK", "BLO-FOTEHOBOD")
    assert origins_of(None) == ()
    assert origin_of("/units/BLO-OYBEK") == origin_of("BLO-OYBEK") == "BLO-OYBEK"
    with pytest.raises(ValueError, match="not a unit id"):
        origin_of("/units/blo oybek")


class Owners:
    """:class:`services.core.alert_register.OwnerCheck` over a dictionary id → origins."""

    def __init__(self, origins: dict[str, tuple[str, ...]]) -> None:
        self.origins, self.asked = origins, list[AlertRef]()

    async def owners_instead(self, changed: Sequence[AlertRef]) -> list[tuple[str, ...]]:
        self.asked += changed
        found = [self.origins.get(alert.id, ()) for alert in changed]
        return [() if a.origin in o else o for a, o in zip(changed, found, strict=True)]


def _events(*docs: dict[str, Any]) -> list[CloudEvent]:
    return [CloudEvent.model_validate(doc) for doc in docs]


def _close(unit: str, alert_id: str) -> dict[str, Any]:
    return factories.event("alert.cancelled", unit, {"reason": "x"}, subject=alert_id)


async def test_a_change_of_another_units_alert_is_rejected_at_its_subject() -> None:
    owners = Owners({"BT-1": ("BLO-OYBEK",)})
    events = _events(factories.seizure(), _close("BLO-DUSTLIK", "BT-1"))
    [rejection] = await foreign_changes(events, owners)
    assert (rejection.index, rejection.field) == (1, "subject")
    assert rejection.message == "alert 'BT-1' was raised by BLO-OYBEK: only BLO-OYBEK may change it"
    [single] = await foreign_changes(events[1:], owners, batch=False)
    assert single.index is None


async def test_changes_of_its_own_alerts_pass_without_asking_when_raised_alongside() -> None:
    owners = Owners({"BT-1": ("BLO-OYBEK",), "BT-2": ("BLO-OYBEK", "BLO-AYRITOM")})
    raised = factories.alert("BLO-DUSTLIK", id="BT-1")
    events = _events(raised, _close("BLO-DUSTLIK", "BT-1"), _close("BLO-AYRITOM", "BT-2"))
    assert await foreign_changes(events, owners) == []
    assert owners.asked == [AlertRef("BLO-AYRITOM", "BT-2")]  # the raised one needs no question
    assert await foreign_changes(_events(factories.alert()), owners) == []


async def test_several_owners_are_all_named() -> None:
    owners = Owners({"BT-2": ("BLO-OYBEK", "BLO-AYRITOM")})
    [rejection] = await foreign_changes(_events(_close("BLO-DUSTLIK", "BT-2")), owners)
    assert rejection.message == (
        "alert 'BT-2' was raised by BLO-OYBEK, BLO-AYRITOM: only each may change its own"
    )
