"""Reading the inboxes: pages of a unit's entries, each assembled with its acknowledgement,
escalation, changes, webhook outcomes and the views it refers to (in two pipelined round
trips whatever the page's length)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, cast

from redis.asyncio import Redis

from services.core import streams
from services.notifier.model import Acknowledgement, Delivery
from services.notifier.webhook_outcomes import outcome_documents, outcomes_key

MAX_CHANGES_SHOWN = 50
"""An entry shows its latest changes up to this many (``changes_total`` counts them all)."""


CURSOR_PATTERN = r"^[0-9]{1,20}(\.[0-9]{1,9})?:.+$"
"""A page cursor: ``<delivery time>:<alert key>`` of the last entry of the previous page
(the key is ``<origin>/<alert id>``). Every string of this form is a cursor (an alert no
longer there: the page goes on by time)."""


class InvalidCursor(ValueError):
    """A page cursor not of the form :data:`CURSOR_PATTERN`."""


def _cursor(score: float, alert_id: str) -> str:
    return f"{score:.6f}:{alert_id}"


def _parse_cursor(cursor: str) -> tuple[float, str]:
    if not re.fullmatch(CURSOR_PATTERN, cursor, flags=re.DOTALL):
        raise InvalidCursor("not a page's 'next': '<delivery time>:<alert key>'")
    score, alert_id = cursor.split(":", 1)
    return float(score), alert_id


async def page(
    redis: Redis, unit: str, limit: int = 100, after: str | None = None
) -> tuple[list[Delivery], str | None]:
    """A page of a unit's deliveries, newest first, and the cursor of the next (or None).

    ``after`` is a previous page's cursor; :class:`InvalidCursor` if it is not one. When
    the entry it names has expired meanwhile, the page goes on from that entry's time.
    """
    order = streams.inbox_order_key(unit)
    if after is None:
        rows = await redis.zrevrange(order, 0, limit, withscores=True)
    else:
        score, last = _parse_cursor(after)
        rank = await redis.zrevrank(order, last)
        if isinstance(rank, int):
            rows = await redis.zrevrange(order, rank + 1, rank + 1 + limit, withscores=True)
        else:
            rows = await redis.zrevrangebyscore(
                order, f"({score!r}", "-inf", start=0, num=limit + 1, withscores=True
            )
    shown = [(_text(pair[0]), float(pair[1])) for pair in rows[:limit]]
    found = await entries(redis, unit, [alert_id for alert_id, _ in shown])
    more = len(rows) > limit and bool(shown)
    return found, _cursor(shown[-1][1], shown[-1][0]) if more else None


async def entries(redis: Redis, unit: str, ids: Sequence[str]) -> list[Delivery]:
    """The unit's entries of these alerts (those it has; ``ids`` are alert keys,
    :func:`~services.core.streams.alert_key`), in order: the entries and what belongs to them
    in one round trip, then the views they refer to in another."""
    if not ids:
        return []
    alerts = [streams.alert_of_key(key) for key in ids]
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hmget(streams.inbox_key(unit), list(ids))
        pipe.hmget(streams.inbox_acks_key(unit), list(ids))
        pipe.hmget(streams.inbox_escalations_key(unit), list(ids))
        for alert in alerts:
            pipe.hvals(streams.inbox_changes_key(unit, alert))
            pipe.hvals(outcomes_key(unit, alert))
        deliveries, acks, escalations, *rest = await pipe.execute()
    found = []
    for i, (alert, delivery) in enumerate(zip(alerts, deliveries, strict=True)):
        if delivery is not None:
            history = sorted((json.loads(c) for c in rest[2 * i]), key=_chronological)
            outcomes = outcome_documents(rest[2 * i + 1])
            found.append((alert, json.loads(delivery), acks[i], escalations[i], history, outcomes))
    async with redis.pipeline(transaction=False) as pipe:
        for alert, delivery, _, _, history, _ in found:
            refs = [c["ref"] for c in history[-MAX_CHANGES_SHOWN:] if "ref" in c]
            pipe.hmget(streams.views_key(alert), [delivery.get("event_ref", ""), *refs])
        views = await pipe.execute()
    result = []
    for (_, delivery, ack, escalation, history, outcomes), copies in zip(found, views, strict=True):
        # stored before views were shared, an entry holds its event itself
        event = delivery.pop("event", None) or _loads(copies[0])
        delivery.pop("event_ref", None)
        if event is None:  # expired while this was read
            continue
        shown = iter(copies[1:])
        changes = [_loads(next(shown)) if "ref" in c else c for c in history[-MAX_CHANGES_SHOWN:]]
        entry = _assemble({**delivery, "event": event}, ack, history, escalation)
        entry["changes"] = [change for change in changes if change is not None]
        entry["webhooks"] = outcomes
        result.append(entry)
    return result


def _chronological(change: dict[str, Any]) -> tuple[str, str]:
    return change["time"], change["id"]


def _loads(raw: bytes | str | None) -> Any:
    return None if raw is None else json.loads(raw)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


_FINAL_STATES = {"alert.cancelled": "cancelled", "alert.closed": "closed"}


def _assemble(
    delivery: dict[str, Any],
    ack: bytes | str | None,
    history: list[dict[str, Any]],
    escalation: bytes | str | None,
) -> Delivery:
    """An inbox entry: the delivery, its acknowledgement, escalation and state (from every
    change's type, in order; the caller adds the changes shown)."""
    ack_doc = json.loads(ack) if ack else {}
    state = "open"
    for change in history:
        state = _FINAL_STATES.get(change["type"], "updated" if state == "open" else state)
    entry = {
        **delivery,
        "acknowledged_at": ack_doc.get("acknowledged_at"),
        "acknowledged_by": ack_doc.get("acknowledged_by"),
        "acknowledgement": _acknowledgement(ack_doc),
        "escalated": escalation is not None,
        "escalation": json.loads(escalation) if escalation else None,
        "state": state,
        "changes_total": len(history),
    }
    return cast(Delivery, entry)  # the caller adds "changes" and "webhooks"


def _acknowledgement(ack: dict[str, Any]) -> Acknowledgement | None:
    """Who acknowledged, as stored: the principal, its person, the typed name and note.

    Acknowledgements stored before principals were recorded kept the typed name (or the
    principal's name when none was typed) in ``acknowledged_by``: shown as ``officer``.
    """
    if not ack:
        return None
    if "officer" not in ack:  # stored before principals were recorded
        ack = {**ack, "acknowledged_by": None, "officer": ack.get("acknowledged_by")}
    return {
        "principal": ack.get("acknowledged_by"),
        "person": ack.get("person"),
        "officer": ack.get("officer"),
        "note": ack.get("note"),
        "acknowledged_at": ack.get("acknowledged_at"),
    }
