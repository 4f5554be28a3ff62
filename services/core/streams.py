"""Every Redis key, stream and consumer-group name, in one place.

Keys share the ``{liaison}`` hash tag so that, on Redis Cluster, the Lua
scripts that touch several of them at once stay on one slot.
"""

from collections.abc import Iterable

from schemas.alerts import AlertRef
from schemas.vocabulary import LEDGER_TYPES, SYSTEM_TYPES, EventType

PREFIX = "{liaison}"

SEIZURES = f"{PREFIX}:stream:seizures"
"""``seizure.reported`` events."""

ALERTS = f"{PREFIX}:stream:alerts"
"""Alert lifecycle events published by agencies (raised, updated, cancelled, closed), and
``operation.opened``/``operation.closed``: on one stream, the notifier reads an operation's
opening before the alerts published after it."""

RECEIPTS = f"{PREFIX}:stream:receipts"
"""Events the system emits: ``alert.delivered``, ``alert.acknowledged``, ``alert.escalated``."""

DEAD_LETTERS = f"{PREFIX}:stream:dead-letters"
"""Entries that could not be processed, each with its reason."""

CANONICAL_STREAMS = (SEIZURES, ALERTS, RECEIPTS)

ACCESS = f"{PREFIX}:stream:access"
"""Records of reads of personal data (the access record, :mod:`services.core.access`): the
API appends one before it answers, the ledger appends it to its access chain."""

INGRESS_PREFIX = f"{PREFIX}:stream:ingress:"
"""Prefix of the ingress streams: one per publisher (:func:`ingress_stream`)."""


def ingress_stream(publisher: str) -> str:
    """The ingress stream of a publisher principal: raw CloudEvent JSON (field ``__data__``)
    XADDed by that agency's system, which ingest validates — for that publisher's units
    only, as over HTTP — and forwards to its canonical stream or dead-letters.

    One stream per agency, each writable by that agency's Valkey user alone: ACLs cannot
    restrict XADD's arguments, so on a shared stream any agency could erase the others'
    unread entries (``MAXLEN 0``) or block every later append (an id at the maximum).
    """
    return f"{INGRESS_PREFIX}{publisher}"


def publisher_of_ingress(stream: str) -> str | None:
    """The publisher whose ingress ``stream`` is; None for any other stream."""
    return stream.removeprefix(INGRESS_PREFIX) if stream.startswith(INGRESS_PREFIX) else None


WEBHOOKS = f"{PREFIX}:stream:webhooks"
"""Webhook jobs, one per (delivery, endpoint); not CloudEvents, so not for the ledger."""

WEBHOOKS_GROUP = "webhooks"
WEBHOOKS_PROGRESS = f"{PREFIX}:webhooks:progress"
WEBHOOKS_MARKER_PREFIX = f"{PREFIX}:webhooks:queued:"

LEDGER_GROUP = "ledger"
NOTIFIER_GROUP = "notifier"
INGEST_GROUP = "ingest"

GROUPS: dict[str, tuple[str, ...]] = {
    SEIZURES: (LEDGER_GROUP,),
    ALERTS: (LEDGER_GROUP, NOTIFIER_GROUP),
    RECEIPTS: (LEDGER_GROUP,),
    WEBHOOKS: (WEBHOOKS_GROUP,),
    ACCESS: (LEDGER_GROUP,),
}
"""Consumer groups per stream; created at id ``0`` before anything publishes. The ingress
streams, one per publisher of the configuration, come on top (:func:`groups`)."""


def groups(publishers: Iterable[str] = ()) -> dict[str, tuple[str, ...]]:
    """:data:`GROUPS` and the ``ingest`` group of each publisher's ingress stream."""
    return {**GROUPS, **{ingress_stream(name): (INGEST_GROUP,) for name in publishers}}


SEEN = f"{PREFIX}:seen"
"""Prefix of the hashes ``source id`` → stream entry id of the events accepted (publish-side
idempotency), one per dedupe window: ``SEEN:<window number>``, each expiring after two."""


def seen_keys(window_seconds: int, now: float) -> tuple[str, str]:
    """The current window's hash and the previous one's: together they cover at least one
    whole window back from ``now``."""
    current = int(now // window_seconds)
    return f"{SEEN}:{current}", f"{SEEN}:{current - 1}"


EVENT_FIELD = "__data__"
"""The stream-entry field holding the CloudEvent's JSON (FastStream's raw-data field)."""

DEADLINES = f"{PREFIX}:deadlines"
"""Sorted set ``unit\norigin\nalert id`` → acknowledgement deadline (epoch seconds)."""

FEED_MAXLEN = 10_000
"""Entries kept per unit feed: it serves live screens; the inbox is the record."""

ALERT_ORIGINS = f"{PREFIX}:alert-origins"
"""Hash alert id → the sources that raised an alert with that id, space-separated, in the
order the notifier first delivered them (``/units/BLO-OYBEK /units/BLO-FOTEHOBOD``). Written
by the notifier, read by ingest to refuse another unit's change (:mod:`services.core.alert_register`)."""

OPERATIONS = f"{PREFIX}:operations"
"""Hash operation name → the operation (JSON: owner, members, start, end, closed_at). Written
by the notifier from ``operation.opened``/``closed``, read by ingest to refuse an alert of an
unknown or closed operation (:mod:`services.core.operations`)."""

INBOX_PREFIX = f"{PREFIX}:inbox:"
ALERT_RECIPIENTS_PREFIX = f"{PREFIX}:recipients:"


def stream_for(event_type: EventType) -> str:
    """The canonical stream an event of this type is published to."""
    if event_type is EventType.SEIZURE_REPORTED:
        return SEIZURES
    if event_type in LEDGER_TYPES:
        raise ValueError(f"{event_type} is recorded by the ledger itself, on no stream")
    if event_type in SYSTEM_TYPES:
        return RECEIPTS
    return ALERTS


def inbox_key(unit: str) -> str:
    """Hash alert key (:func:`alert_key`) → delivery JSON of one unit."""
    return f"{INBOX_PREFIX}{unit}"


def inbox_order_key(unit: str) -> str:
    """Sorted set of a unit's alert keys scored by delivery time (newest first on read)."""
    return f"{INBOX_PREFIX}{unit}:order"


def alert_key(alert: AlertRef) -> str:
    """An alert in key names and hash fields: ``<origin>/<alert id>``.

    Unit ids never hold ``/``, so the first one ends the origin: two alerts
    with the same id from two units never share a key.
    """
    return f"{alert.origin}/{alert.id}"


def alert_of_key(key: str) -> AlertRef:
    """The alert of an :func:`alert_key`."""
    origin, _, alert_id = key.partition("/")
    return AlertRef(origin, alert_id)


def recipients_key(alert: AlertRef) -> str:
    """Hash ``unit`` → view of everyone who received an alert (for updates and closures)."""
    return f"{ALERT_RECIPIENTS_PREFIX}{alert_key(alert)}"


def inbox_changes_key(unit: str, alert: AlertRef) -> str:
    """Hash ``change id`` → the unit's copy of an alert's change (a reference into the
    alert's views, or, stored before, the copy itself)."""
    return f"{inbox_key(unit)}:changes:{alert_key(alert)}"


def inbox_acks_key(unit: str) -> str:
    """Hash alert key → the unit's acknowledgement of it."""
    return f"{inbox_key(unit)}:acks"


def inbox_escalations_key(unit: str) -> str:
    """Hash alert key → the escalation of the unit's delivery of it."""
    return f"{inbox_key(unit)}:escalations"


def inbox_notices_key(unit: str) -> str:
    """Hash ``<unit>/<alert key>`` → escalation notice, of a coordinator."""
    return f"{inbox_key(unit)}:notices"


INBOX_EXPIRY = f"{INBOX_PREFIX}expiry"
"""Sorted set alert key → when its inbox entries expire (epoch seconds): its last
delivery, change or acknowledgement plus ``INBOX_RETENTION``."""


def views_key(alert: AlertRef) -> str:
    """Hash of an alert's rendered views (one copy each, whoever received it): ``full``,
    ``non-nominal``, and each change's copies; inbox entries refer to them by field."""
    return f"{INBOX_PREFIX}views:{alert_key(alert)}"


def feed_key(unit: str) -> str:
    """Stream of a unit's inbox changes, for live screens (Server-Sent Events)."""
    return f"{INBOX_PREFIX}{unit}:feed"


CONSOLE_PREFIX = f"{PREFIX}:console:"


def console_session_key(digest: str) -> str:
    """String: one console session (JSON), under the SHA-256 of its cookie; expires when idle."""
    return f"{CONSOLE_PREFIX}session:{digest}"


def console_signin_failures_key(kind: str, subject: str) -> str:
    """Counter of failed console sign-ins per ``client`` address or per ``token`` digest."""
    return f"{CONSOLE_PREFIX}signin-failures:{kind}:{subject}"


def console_signin_block_key(kind: str, subject: str) -> str:
    """Present while sign-ins from this client (or with this token) must wait; its TTL says how
    long."""
    return f"{CONSOLE_PREFIX}signin-wait:{kind}:{subject}"


QUOTA_PREFIX = f"{PREFIX}:quota:"


def quota_key(publisher: str) -> str:
    """Hash of a publisher's token bucket (``tokens``, ``at`` in ms of the server's clock),
    shared by every API process: its fair share of ``POST /v1/events``
    (:mod:`services.ingest.quotas`). Expires once the bucket would be full again."""
    return f"{QUOTA_PREFIX}{publisher}"
