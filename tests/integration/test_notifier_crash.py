"""Two notifier processes share the alerts; one is SIGKILLed holding delivered alerts; the
other finishes.

Two ``liaison serve notifier`` processes (one consumer group) run on the
session's server while alerts are published through the real path
(:class:`~services.core.bus.RedisPublisher`). One of them, the victim, connects as a
server user that may do everything but ``XACK``: every batch it takes it
delivers (the inbox script, all or none) and then fails to acknowledge, so it
always holds alerts whose deliveries are written — the state a crash between
the effect and the acknowledgement leaves, reached every run rather than
caught by chance. It is SIGKILLed there, with deliveries written, so the
survivor's redelivery meets deliveries that exist. With
``LIAISON_CLAIM_IDLE`` at one second the survivor's claimer takes its pending
alerts over. Deadlines are one second, so both processes escalate while all
this happens.

Then every recipient has every alert exactly once (counted in the live feeds'
notifications, which a second delivery would repeat), every (alert, unit) has
exactly one ``alert.delivered`` and one ``alert.escalated`` receipt, nothing is
pending or dead-lettered, and the survivor stops cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from redis.asyncio import Redis

from schemas.alerts import AlertRef
from schemas.events import CloudEvent
from schemas.topology import default_topology
from services.bootstrap import Runtime
from services.core import bus, streams
from services.core.settings import Settings
from services.notifier.handlers import facts_of
from services.notifier.routing import route_alert
from tests import factories
from tests.integration.conftest import eventually, seen_index
from tests.integration.processes import ServiceProcess, ServiceProcesses, wait_for

TOTAL = 600
"""Alerts published; each reaches five units."""
BATCH = 50
"""Alerts per publish call."""
LEAD = 200
"""The publisher stays at most this many alerts ahead of what the notifiers acknowledged."""
EXTRA = "BLO-AYRITOM"
"""An explicit recipient on top of the design example's four."""


@pytest.fixture
def notifiers(tmp_path: Path, redis_url: str) -> Iterator[ServiceProcesses]:
    """``liaison serve notifier`` with one-second claim idle and deadlines; reaped at the end."""
    config = tmp_path / "liaison.yaml"
    config.write_text("ack_deadlines: {flash: 1s, urgent: 1s, routine: 1s}\n", encoding="utf-8")
    env = {
        "LIAISON_REDIS_URL": redis_url,
        "LIAISON_DATA_DIR": str(tmp_path / "var"),
        "LIAISON_CLAIM_IDLE": "1s",
        "LIAISON_CONFIG": str(config),
    }
    processes = ServiceProcesses(tmp_path / "logs", env)
    try:
        yield processes
    finally:
        processes.close()


async def group_info(redis: Redis) -> dict[str, object]:
    """XINFO GROUPS of the notifier's group on the alert stream."""
    groups = await redis.xinfo_groups(streams.ALERTS)
    info: dict[str, object] = next(g for g in groups if g["name"] == b"notifier")
    return info


async def held_by(redis: Redis, process: ServiceProcess) -> list[str]:
    """Alert-stream entry ids read (or claimed) by this process and not acknowledged."""
    tag, ids = f":{process.pid}:", []
    for consumer in await redis.xinfo_consumers(streams.ALERTS, streams.NOTIFIER_GROUP):
        if tag in consumer["name"].decode() and consumer["pending"]:
            rows = await redis.xpending_range(
                streams.ALERTS, streams.NOTIFIER_GROUP, min="-", max="+", count=TOTAL,
                consumername=consumer["name"],
            )  # fmt: skip
            ids += [row["message_id"].decode() for row in rows]
    return ids


@dataclass
class Feeder:
    """Publishes alerts in batches up to ``target``, at most ``LEAD`` ahead of the notifiers.

    Ahead of what they acknowledged, not of what they read: a notifier reads ahead.
    """

    redis: Redis
    alerts: list[CloudEvent]
    target: int = 0
    published: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        publisher = bus.RedisPublisher(self.redis)
        while self.published < len(self.alerts):
            info = await group_info(self.redis)  # done: read and acknowledged
            done = int(str(info["entries-read"] or 0)) - int(str(info["pending"]))
            if self.published >= self.target or self.published - done >= LEAD:
                await asyncio.sleep(0.01)
                continue
            batch = self.alerts[self.published : min(self.published + BATCH, self.target)]
            assert all(await publisher.publish(batch)), "a fresh alert was taken for a duplicate"
            self.published += len(batch)
        self.done.set()


def _receipts(entries: list[tuple[bytes, dict[bytes, bytes]]], kind: str) -> Counter[str]:
    """``alert id/unit`` → how many receipts of ``kind`` the receipt stream holds."""
    counts: Counter[str] = Counter()
    for _, fields in entries:
        event = json.loads(fields[streams.EVENT_FIELD.encode()])
        if event["type"] == kind:
            data = event["data"]
            counts[f"{data['alert_id']}/{data.get('recipient') or data.get('unit')}"] += 1
    return counts


@pytest.fixture
async def victim_url(redis: Redis, redis_url: str) -> AsyncIterator[str]:
    """A URL of the session's server for a user allowed everything but ``XACK``."""
    name, password = f"victim-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    await redis.acl_setuser(name, enabled=True, passwords=[f"+{password}"], keys=["*"],
                            channels=["*"], commands=["+@all", "-xack"])  # fmt: skip
    scheme, _, rest = redis_url.partition("://")
    try:
        yield f"{scheme}://{name}:{password}@{rest}"
    finally:
        await redis.acl_deluser(name)


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_a_notifier_killed_holding_delivered_alerts_loses_and_duplicates_nothing(
    redis: Redis, victim_url: str, notifiers: ServiceProcesses
) -> None:
    topology = default_topology()
    alerts = [CloudEvent.model_validate(_alert()) for _ in range(TOTAL)]
    expected = {a.id: {r.unit for r in route_alert(facts_of(a), topology)} for a in alerts}
    units = set().union(*expected.values())
    deliveries = {f"{alert}/{unit}" for alert, to in expected.items() for unit in to}
    assert all(len(to) == 5 for to in expected.values())
    await bus.ensure_groups(redis)
    alert_of: dict[str, str] = {}  # stream entry id -> alert id

    async def delivered(entry_ids: list[str]) -> int:
        """Of these entries, how many alerts already reached their inboxes."""
        if any(e not in alert_of for e in entry_ids):
            seen = await seen_index(redis)
            alert_of.update({v.decode(): k.decode().split(" ", 1)[1] for k, v in seen.items()})
        ids = [alert_of[e] for e in entry_ids]
        pipe = redis.pipeline(transaction=False)
        for alert_id in ids:
            pipe.exists(streams.recipients_key(AlertRef("BLO-OYBEK", alert_id)))
        return sum(await pipe.execute())

    victim, survivor = (
        notifiers.start("notifier", {"LIAISON_REDIS_URL": victim_url}),
        (notifiers.start("notifier")),
    )
    feeder = Feeder(redis, alerts, target=TOTAL // 2)  # the rest once the victim is dead
    feeding = asyncio.create_task(feeder.run())
    try:

        async def both_reading() -> bool:
            consumers = await redis.xinfo_consumers(streams.ALERTS, streams.NOTIFIER_GROUP)
            names = " ".join(c["name"].decode() for c in consumers)
            return all(f":{p.pid}:" in names for p in (victim, survivor))

        await wait_for(both_reading, "both notifiers reading", notifiers)

        async def holding_delivered() -> bool:  # it cannot acknowledge: soon, every run
            held = await held_by(redis, victim)
            if not held and feeder.published >= feeder.target < TOTAL - BATCH:
                # the survivor read every batch so far (whoever blocks first gets the next):
                # feed more, keeping some for after the kill
                feeder.target += BATCH
            return bool(held) and await delivered(held) > 0

        await wait_for(holding_delivered, "the victim holding delivered alerts", notifiers)
        victim.pause()  # frozen where it is, to be looked at; then killed there
        stranded = await held_by(redis, victim)
        written = await delivered(stranded)
        victim.kill()
        feeder.target = TOTAL

        async def settled() -> bool:
            if not feeder.done.is_set():
                return False
            info = await group_info(redis)
            entries = await redis.xrange(streams.RECEIPTS)
            return (
                info["pending"] == 0
                and info["lag"] == 0
                and set(_receipts(entries, "alert.delivered")) == deliveries
                and set(_receipts(entries, "alert.escalated")) == deliveries
                and await redis.zcard(streams.DEADLINES) == 0
            )

        await wait_for(settled, "every alert delivered and escalated", notifiers, 60)
        assert await survivor.terminate() == 0, survivor.output()
    finally:
        feeding.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeding

    print(f"\nkilled holding {len(stranded)} alerts, {written} of them delivered")
    assert written > 0, "the kill stranded no delivered alert: no redelivery met one"
    # every recipient has every alert addressed to it, exactly once
    for unit in units:
        mine = {a for a, to in expected.items() if unit in to}
        keys = await redis.hkeys(streams.inbox_key(unit))  # "<origin>/<alert id>"
        assert {k.decode().partition("/")[2] for k in keys} == mine
        assert await redis.zcard(streams.inbox_order_key(unit)) == len(mine)
        feed = await redis.xrange(streams.feed_key(unit))
        kinds = Counter((f[b"kind"], f[b"alert_id"]) for _, f in feed if f[b"kind"] != b"notice")
        assert set(kinds.values()) == {1}, "a feed notification was repeated"
    # one receipt per (alert, unit) of each kind, no more: the redelivery re-published nothing
    entries = await redis.xrange(streams.RECEIPTS)
    for kind in ("alert.delivered", "alert.escalated"):
        counts = _receipts(entries, kind)
        assert set(counts) == deliveries
        assert set(counts.values()) == {1}, f"{kind} receipt duplicated"
    assert await redis.xlen(streams.DEAD_LETTERS) == 0
    assert "Traceback" not in survivor.output(), survivor.output()


def _alert() -> dict[str, object]:
    alert = factories.alert()
    alert["data"]["recipients"] = [EXTRA]
    return alert


async def test_notifiers_starting_together_leave_the_ledger_alone(
    redis_url: str, tmp_path: Path
) -> None:
    """A notifier neither reads nor writes the ledger, so it does not open it: several starting
    at once (two here, as above; a scaled deployment) never meet in its database's migration
    ("database is locked"), and it needs no access to the database at all."""
    settings = Settings(data_dir=tmp_path / "var", redis_url=redis_url, config=None)

    async def start() -> None:
        async with Runtime(settings, services=("notifier",)) as runtime:

            async def ready() -> bool:
                return all((await runtime.readiness()).values())

            await eventually(ready)

    await asyncio.gather(*(start() for _ in range(4)))
    assert not (tmp_path / "var" / "ledger.sqlite3").exists()
