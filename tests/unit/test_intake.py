"""Ingest validation: located rejections, all-or-nothing batches, publisher rights."""

from __future__ import annotations

import pytest

from schemas.topology import default_topology
from services.ingest.intake import Rejected, foreign_units, validate_batch
from tests import factories

TOPOLOGY = default_topology()


def _rejections(body: object) -> list[tuple[int | None, str]]:
    with pytest.raises(Rejected) as caught:
        validate_batch(body, TOPOLOGY)
    return [(r.index, r.field) for r in caught.value.rejections]


def test_single_event_and_batch() -> None:
    events, batch = validate_batch(factories.alert(), TOPOLOGY)
    assert (len(events), batch) == (1, False)
    events, batch = validate_batch([factories.alert(), factories.seizure()], TOPOLOGY)
    assert (len(events), batch) == (2, True)


def test_every_bad_event_of_a_batch_is_located() -> None:
    missing = factories.alert()
    del missing["data"]["summary"]
    unknown = factories.alert(unit="BLO-ATLANTIS")
    assert _rejections([factories.alert(), missing, unknown]) == [
        (1, "data.summary"),
        (2, "source"),
    ]


def test_unknown_explicit_recipient() -> None:
    alert = factories.alert()
    alert["data"]["recipients"] = ["IMT-NUKUS", "IMT-NOWHERE"]
    assert _rejections(alert) == [(None, "data.recipients.1")]


@pytest.mark.parametrize("body", ["text", 42, None, []])
def test_body_that_is_no_event(body: object) -> None:
    assert _rejections(body) == [(None, "(body)")]


def test_foreign_units() -> None:
    events, _ = validate_batch([factories.alert(), factories.seizure()], TOPOLOGY)
    assert foreign_units(events, ["BLO-OYBEK"]) == ["IMT-GULISTAN"]
    assert foreign_units(events, ["BLO-OYBEK", "IMT-GULISTAN"]) == []
