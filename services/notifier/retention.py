"""Inboxes are working state, not the record: an alert leaves them ``INBOX_RETENTION`` after
its last delivery, change or acknowledgement (the ledger keeps it for good).

Each write of an alert's entries moves its expiry (``ZADD … GT`` on
:data:`~services.core.streams.INBOX_EXPIRY`); :func:`expire_inboxes` removes every alert
whose expiry has passed from every inbox that holds it — the entries, acknowledgements,
escalations, changes, webhook outcomes, deadlines, coordinators' notices, the recipient
list, the shared views and its entry in the register of alert origins (which ingest reads
to refuse another unit's change: an expired alert is no longer in it) — in one script per alert, which checks the expiry again so an
alert touched meanwhile stays. It only deletes, so it also runs on a full server.
"""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis
from redis.typing import EncodableT, KeyT

from services.core import streams
from services.notifier import inbox_scripts
from services.notifier.webhook_outcomes import outcomes_key

BATCH = 100
"""Alerts expired per call at most."""


async def expire_inboxes(redis: Redis, now: float, limit: int = BATCH) -> int:
    """Remove every alert whose inbox retention ended by ``now``; how many were removed."""
    due = await redis.zrangebyscore(streams.INBOX_EXPIRY, "-inf", now, start=0, num=limit)
    script = redis.register_script(inbox_scripts.EXPIRE)
    removed = 0
    for member in due:
        key = member.decode() if isinstance(member, bytes) else str(member)
        keys, args = await _everything_of(redis, key, now)
        removed += int(await script(keys=keys, args=args))
    return removed


async def _everything_of(redis: Redis, key: str, now: float) -> tuple[list[KeyT], list[EncodableT]]:
    """The keys and arguments of :data:`~services.notifier.inbox_scripts.EXPIRE` for one
    alert, by its key (:func:`~services.core.streams.alert_key`)."""
    alert = streams.alert_of_key(key)
    raw: dict[Any, Any] = await redis.hgetall(streams.recipients_key(alert))
    units = sorted(k.decode() if isinstance(k, bytes) else str(k) for k in raw)
    async with redis.pipeline(transaction=False) as pipe:
        for unit in units:
            pipe.hget(streams.inbox_escalations_key(unit), key)
        escalations = await pipe.execute()
    keys: list[KeyT] = [
        streams.INBOX_EXPIRY,
        streams.recipients_key(alert),
        streams.views_key(alert),
        streams.DEADLINES,
        streams.ALERT_ORIGINS,
    ]
    for unit in units:
        keys += [
            streams.inbox_key(unit),
            streams.inbox_order_key(unit),
            streams.inbox_acks_key(unit),
            streams.inbox_escalations_key(unit),
            streams.inbox_changes_key(unit, alert),
            outcomes_key(unit, alert),
        ]
    notices: list[EncodableT] = []
    for unit, escalation in zip(units, escalations, strict=True):
        for coordinator in json.loads(escalation).get("coordinators", []) if escalation else []:
            keys.append(streams.inbox_notices_key(coordinator))
            notices.append(f"{unit}/{key}")
    args: list[EncodableT] = [key, repr(now), len(units), *units, *notices, alert.id, alert.source]
    return keys, args
