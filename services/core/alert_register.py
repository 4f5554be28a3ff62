"""Who raised which alert id: the register the notifier keeps and ingest reads.

Event ids are unique per source only, so one id may name several units'
alerts (:class:`~schemas.alerts.AlertRef`), each its own. The notifier
registers every alert it delivers in :data:`~services.core.streams.ALERT_ORIGINS`
(alert id → the sources that raised one). Ingest reads it to refuse, at the
door and naming the owner, a change from a unit that raised no alert of that
id — only the unit that raised an alert may change it — instead of accepting
it for the notifier to dead-letter later. This module is shared: neither
service imports the other's modules.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from redis.asyncio import Redis

from schemas.alerts import AlertRef
from services.core import streams
from services.core.bus import DEDUPE_WINDOW

_UNITS = "/units/"

# KEYS[1] = the register; ARGV = (alert id, source)*: each source added to its id's list once.
_CLAIM_LUA = """
for i = 1, #ARGV, 2 do
  local id, source = ARGV[i], ARGV[i + 1]
  local known = redis.call('HGET', KEYS[1], id)
  if not known then
    redis.call('HSET', KEYS[1], id, source)
  elseif not string.find(' ' .. known .. ' ', ' ' .. source .. ' ', 1, true) then
    redis.call('HSET', KEYS[1], id, known .. ' ' .. source)
  end
end
return #ARGV / 2
"""


def origins_of(value: bytes | str | None) -> tuple[str, ...]:
    """The units in one register value (``/units/A /units/B`` → ``("A", "B")``)."""
    if value is None:
        return ()
    text = value.decode() if isinstance(value, bytes) else value
    return tuple(source.removeprefix(_UNITS) for source in text.split())


class OwnerCheck(Protocol):
    """What ingest asks before accepting a change (:class:`AlertRegister` on Redis)."""

    async def owners_instead(self, changed: Sequence[AlertRef]) -> list[tuple[str, ...]]:
        """For each alert a change names, the units that raised an alert of that id when its
        own source did not; ``()`` when the alert may be its source's (or nobody's yet)."""
        ...


class AlertRegister:
    """:data:`~services.core.streams.ALERT_ORIGINS` on Redis.

    ``dedupe_window`` is the publishers' (``Settings.dedupe_window``): an alert
    published but not delivered yet is found in their index of what was
    published, so a unit closing its own alert right after raising it is
    never mistaken for another.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        dedupe_window: int = DEDUPE_WINDOW,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._claim = redis.register_script(_CLAIM_LUA)
        self._window, self._clock = dedupe_window, clock

    async def claim(self, alerts: Sequence[AlertRef]) -> None:
        """Register each alert (idempotent): the notifier, before delivering them."""
        if alerts:
            args = [part for alert in alerts for part in (alert.id, alert.source)]
            await self._claim(keys=[streams.ALERT_ORIGINS], args=args)

    async def origins(self, alert_ids: Sequence[str]) -> list[tuple[str, ...]]:
        """The units that raised an alert of each id (``()``: none delivered yet)."""
        if not alert_ids:
            return []
        values = await self._redis.hmget(streams.ALERT_ORIGINS, list(alert_ids))
        return [origins_of(value) for value in values]

    async def owners_instead(self, changed: Sequence[AlertRef]) -> list[tuple[str, ...]]:
        """See :meth:`OwnerCheck.owners_instead`; one round trip, two when an id is taken."""
        taken = await self.origins([alert.id for alert in changed])
        suspect = [
            i
            for i, (alert, owners) in enumerate(zip(changed, taken, strict=True))
            if owners and alert.origin not in owners
        ]
        if not suspect:
            return [() for _ in changed]
        # Its own alert may be published and not yet delivered: the publishers' index says.
        fields = [f"{changed[i].source} {changed[i].id}" for i in suspect]  # bus.seen_field
        pipe = self._redis.pipeline(transaction=False)
        for key in streams.seen_keys(self._window, self._clock()):
            for field in fields:
                pipe.hget(key, field)
        found: list[Any] = await pipe.execute()
        foreign = {
            i for n, i in enumerate(suspect) if found[n] is None and found[n + len(fields)] is None
        }
        return [taken[i] if i in foreign else () for i in range(len(changed))]


def not_theirs(alert: AlertRef, owners: Sequence[str]) -> str:
    """Why a change of ``alert`` is refused: the units that did raise an alert of its id."""
    named = ", ".join(owners)
    may = f"only {named} may change it" if len(owners) == 1 else "only each may change its own"
    return f"alert {alert.id!r} was raised by {named}: {may}"
