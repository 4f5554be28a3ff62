"""The closed vocabularies of Liaison Exchange: event types and handling codes.

Every service speaks these words; they are part of the public contract
(docs/events.md), so add to them deliberately and never rename a value.
"""

from enum import StrEnum

UNIT_PATTERN = r"^[A-Z0-9][A-Z0-9-]{1,63}$"
"""A unit id: capitals, digits and ``-``, 2-64 characters (it travels in sources and URL paths)."""


class EventType(StrEnum):
    """CloudEvents ``type`` values."""

    SEIZURE_REPORTED = "seizure.reported"
    ALERT_RAISED = "alert.raised"
    ALERT_UPDATED = "alert.updated"
    ALERT_CANCELLED = "alert.cancelled"
    ALERT_CLOSED = "alert.closed"
    ALERT_DELIVERED = "alert.delivered"
    ALERT_ACKNOWLEDGED = "alert.acknowledged"
    ALERT_ESCALATED = "alert.escalated"
    ALERT_WEBHOOK_FAILED = "alert.webhook_failed"
    KEY_REGISTERED = "key.registered"
    KEY_REVOKED = "key.revoked"
    OPERATION_OPENED = "operation.opened"
    OPERATION_CLOSED = "operation.closed"


AGENCY_TYPES = frozenset(
    {
        EventType.SEIZURE_REPORTED,
        EventType.ALERT_RAISED,
        EventType.ALERT_UPDATED,
        EventType.ALERT_CANCELLED,
        EventType.ALERT_CLOSED,
        EventType.OPERATION_OPENED,
        EventType.OPERATION_CLOSED,
    }
)
"""Types an agency system may publish."""

SYSTEM_TYPES = frozenset(set(EventType) - AGENCY_TYPES)
"""Types only Liaison Exchange itself emits."""

LEDGER_TYPES = frozenset({EventType.KEY_REGISTERED, EventType.KEY_REVOKED})
"""System types the ledger records itself, on no stream: the key registry."""


class Tlp(StrEnum):
    """Traffic Light Protocol 2.0 label of an event (the ``tlp`` extension)."""

    CLEAR = "clear"
    GREEN = "green"
    AMBER = "amber"
    AMBER_STRICT = "amber+strict"
    RED = "red"


class Severity(StrEnum):
    """How urgently an alert must be acknowledged."""

    FLASH = "flash"
    URGENT = "urgent"
    ROUTINE = "routine"


class Reason(StrEnum):
    """Why a unit receives an alert (docs/routing.md, "Who receives an alert")."""

    NEIGHBOUR = "neighbour"
    CORRIDOR = "corridor"
    COUNTERPART = "counterpart"
    COORDINATOR = "coordinator"
    EXPLICIT = "explicit"
    OPERATION = "operation"
    """A member of the operation the alert belongs to (docs/routing.md, "Operations")."""


class View(StrEnum):
    """What a recipient may see of an alert's personal data."""

    FULL = "full"
    NON_NOMINAL = "non-nominal"
    """Persons' identities removed, ``persons_count`` left in their place."""
