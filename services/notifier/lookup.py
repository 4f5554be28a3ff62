"""Which alert an officer means: an id in a unit's inbox, with the origin when it matters.

Two units' alerts may share an id (ids are unique per source only), and
both may reach one unit. An officer names the alert by its id and, when the
inbox holds more than one alert of that id, by its origin (``?source=`` on
the HTTP API, ``--source`` on the command line); without it the request is
ambiguous and refused, never guessed.
"""

from __future__ import annotations

import re

from schemas.alerts import AlertRef
from schemas.vocabulary import UNIT_PATTERN
from services.notifier.handlers import Inbox

SOURCE_PATTERN = r"^(/units/)?" + UNIT_PATTERN.removeprefix("^")
"""What may name an alert's origin: its unit id, or its source ``/units/<UNIT-ID>``."""


class AmbiguousAlert(Exception):
    """The unit received several alerts of this id: the caller must say whose."""

    def __init__(self, unit: str, alert_id: str, origins: list[str]) -> None:
        super().__init__(
            f"{unit} received alert {alert_id!r} from {', '.join(origins)}: "
            "say which with its source"
        )
        self.origins = origins


def origin_of(source: str) -> str:
    """``/units/BLO-OYBEK`` or ``BLO-OYBEK`` → ``BLO-OYBEK`` (ValueError otherwise)."""
    if not re.fullmatch(SOURCE_PATTERN, source):
        raise ValueError(f"{source!r} is not a unit id or a source /units/<UNIT-ID>")
    return source.removeprefix("/units/")


async def received_alert(
    inbox: Inbox, unit: str, alert_id: str, source: str | None = None
) -> AlertRef | None:
    """The alert of this id (and origin, when given) in the unit's inbox; None if there is
    none; :class:`AmbiguousAlert` if several are and no origin was given."""
    if source is not None:
        alert = AlertRef(origin_of(source), alert_id)
        return alert if await inbox.get(unit, alert) is not None else None
    found = await inbox.received(unit, alert_id)
    if len(found) > 1:
        raise AmbiguousAlert(unit, alert_id, sorted(alert.origin for alert in found))
    return found[0] if found else None
