"""Streams are trimmed below what every group acknowledged — never an entry still needed."""

from __future__ import annotations

import contextlib
import json
import re
import shlex
from pathlib import Path

import httpx
from redis.asyncio import Redis

from schemas.events import CloudEvent
from services.bootstrap import Runtime
from services.core import streams
from services.core.bus import RedisPublisher
from services.core.settings import Settings
from services.entrypoints.http import create_app
from services.trimmer import parse_id, trim_acknowledged
from tests import factories
from tests.integration.conftest import auth, eventually, principals_config
from tests.integration.test_secrets_in_redis import monitored

STREAM = "{liaison}:stream:test-trim"
NODE = 100
"""Entries per radix-tree node (the server's default): approximate trimming removes whole nodes."""
HOUR_MS = 3_600_000


async def _stream_with_two_groups(redis: Redis, entries: int) -> list[bytes]:
    for group in ("fast", "slow"):
        await redis.xgroup_create(STREAM, group, id="0", mkstream=True)
    pipe = redis.pipeline(transaction=False)
    for i in range(entries):
        pipe.xadd(STREAM, {"n": i})
    ids: list[bytes] = await pipe.execute()
    return ids


async def _read(redis: Redis, group: str, count: int) -> list[bytes]:
    [(_, rows)] = await redis.xreadgroup(group, "c", {STREAM: ">"}, count=count)
    return [entry_id for entry_id, _ in rows]


async def test_nothing_a_group_holds_pending_or_has_not_read_is_trimmed(redis: Redis) -> None:
    ids = await _stream_with_two_groups(redis, 5 * NODE)
    await redis.xack(STREAM, "fast", *await _read(redis, "fast", 5 * NODE))
    slow = await _read(redis, "slow", 3 * NODE)
    await redis.xack(STREAM, "slow", *slow[: NODE + 50])  # 150 left pending

    removed = await trim_acknowledged(redis, [STREAM], retention_ms=0)

    remaining = [entry_id for entry_id, _ in await redis.xrange(STREAM)]
    assert removed == NODE  # the one whole node below the first pending entry
    assert remaining == ids[NODE:]
    claimed = await redis.xclaim(STREAM, "slow", "other", 0, slow[NODE + 50 :])
    assert [entry_id for entry_id, _ in claimed] == slow[NODE + 50 :]
    assert [parse_id(i) for i in await _read(redis, "slow", 5 * NODE)] == [
        parse_id(i) for i in ids[3 * NODE :]
    ]  # the unread part is all there


async def test_entries_younger_than_the_retention_stay(redis: Redis) -> None:
    await _stream_with_two_groups(redis, 3 * NODE)
    for group in ("fast", "slow"):
        await redis.xack(STREAM, group, *await _read(redis, group, 3 * NODE))

    assert await trim_acknowledged(redis, [STREAM], retention_ms=HOUR_MS) == 0
    assert await trim_acknowledged(redis, [STREAM], retention_ms=0) == 2 * NODE


async def test_a_running_deployment_keeps_its_streams_short(
    redis: Redis, redis_url: str, data_dir: Path
) -> None:
    settings = Settings(data_dir=data_dir, redis_url=redis_url, config=None)
    events = [CloudEvent.model_validate(factories.seizure()) for _ in range(10 * NODE)]
    async with Runtime(settings, principals_config()) as runtime:
        await RedisPublisher(redis).publish(events)

        async def recorded_and_trimmed() -> bool:
            return await runtime.ledger.count() == len(events) and (
                await redis.xlen(streams.SEIZURES) < NODE
            )

        await eventually(recorded_and_trimmed, timeout=30)


async def test_a_backlog_larger_than_one_trim_call_goes_in_one_pass(redis: Redis) -> None:
    ids = await _stream_with_two_groups(redis, 250 * NODE)  # 2.5x the server's limit per call
    for group in ("fast", "slow"):
        rows = await _read(redis, group, 250 * NODE)
        await redis.xack(STREAM, group, *rows)

    removed = await trim_acknowledged(redis, [STREAM], retention_ms=0)

    assert removed == len(ids) - NODE  # all but the node holding the last delivered entry


def _commands(lines: list[bytes]) -> list[list[str]]:
    """MONITOR's lines as argument lists (the first word upper-cased)."""
    commands = []
    for line in lines:
        _, _, quoted = line.decode("utf-8", "replace").partition("] ")
        with contextlib.suppress(ValueError):  # an unbalanced quote: not a stream command
            words = shlex.split(quoted)
            if words:
                commands.append([words[0].upper(), *words[1:]])
    return commands


async def test_nothing_published_is_ever_capped_by_maxlen(
    redis_url: str, redis: Redis, data_dir: Path
) -> None:
    """docs/guarantees.md, Streams stay short: "Never MAXLEN on publish, which would drop unread
    entries". Every command a whole runtime sends while it publishes (HTTP, ingress),
    delivers, acknowledges and trims is watched: a stream's entries are only ever removed by
    ``XTRIM MINID`` (below what every group acknowledged); ``MAXLEN`` caps only the units'
    live feeds, which serve screens, not consumers."""
    settings = Settings(data_dir=data_dir, redis_url=redis_url, config=None)
    alert, seizure = factories.alert(), factories.seizure()
    async with monitored(redis_url) as seen, Runtime(settings, principals_config()) as runtime:
        transport = httpx.ASGITransport(app=create_app(runtime.deps()))
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as api:
            for event, who in ((alert, "customs"), (seizure, "mia")):
                response = await api.post("/v1/events", json=event, headers=auth(who))
                assert response.status_code == 202, response.text
            await redis.xadd(streams.ingress_stream("uz-mia"),
                             {streams.EVENT_FIELD: json.dumps(factories.seizure())})  # fmt: skip
            ack = f"/v1/units/IMT-GULISTAN/alerts/{alert['id']}/ack"

            async def delivered() -> bool:
                return (await api.post(ack, headers=auth("gulistan"))).status_code == 200

            await eventually(delivered)

            async def recorded_and_trimmed() -> bool:  # 3 events, 4 deliveries, 1 ack
                return await runtime.ledger.count() == 8 and any(b'"XTRIM"' in s for s in seen)

            await eventually(recorded_and_trimmed, timeout=30)
    commands = _commands(seen)
    writes = [c for c in commands if c[0] in ("XADD", "XTRIM")]
    assert any(c[0] == "XTRIM" and "MINID" in (a.upper() for a in c) for c in writes)
    capped = [c for c in writes if {"MAXLEN", "MINID"} & {a.upper() for a in c[2:4]}]
    for command in capped:
        key = command[1]
        if "MAXLEN" in (a.upper() for a in command[2:4]):
            assert re.fullmatch(rf"{re.escape(streams.INBOX_PREFIX)}[^:]+:feed", key), command
        else:
            assert command[0] == "XTRIM", command  # MINID on an XADD would drop unread entries
