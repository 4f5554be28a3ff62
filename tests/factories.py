"""Builders of valid CloudEvents (as JSON-ready dicts) for tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any


def event(type_: str, unit: str, data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A CloudEvent from ``/units/<unit>``; ``extra`` sets or overrides attributes."""
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": f"/units/{unit}",
        "type": type_,
        "time": datetime.now(UTC).isoformat(),
        "data": data,
        **extra,
    }


def alert(unit: str = "BLO-OYBEK", **extra: Any) -> dict[str, Any]:
    """The design's worked example: urgent, TJ → UZ → KZ, releasable to UZ and TJ, one person."""
    data = {
        "severity": "urgent",
        "summary": "KAMAZ truck suspected of carrying heroin",
        "route": ["TJ", "UZ", "KZ"],
        "persons": [{"name": "Example Driver", "nationality": "TJ", "document": "P-0000"}],
    }
    return event("alert.raised", unit, data, releasableto="UZ,TJ", **extra)


def seizure(unit: str = "IMT-GULISTAN", grams: float = 20032, **extra: Any) -> dict[str, Any]:
    """A heroin seizure reported in grams."""
    data = {
        "occurred_at": datetime.now(UTC).isoformat(),
        "drugs": [{"substance": "heroin", "quantity": grams, "measure": "g"}],
        "agencies": ["MIA", "SSS", "SCC"],
        "route": ["TJ", "UZ", "KZ"],
    }
    return event("seizure.reported", unit, data, **extra)


AWKWARD_IDS = [
    "BT-2024/0091",  # the border-xml sample's
    "50%off",
    "%2F",  # a literal percent-escape: decoded once, never twice
    "what?",
    "case#7",
    "with space",
    "Ойбек-№5",  # non-ASCII
    ".",
    "..",
    "a/../b",
    "/lead",
    "trail/",
    "x/ack",  # ends like the route itself
    "stream",
    "L/" * 128,  # as long as the schema allows (256)
    "N" * 256,
]
"""Ids the schema accepts that URLs, keys and receipts must carry intact (issue 12, defect 2)."""
