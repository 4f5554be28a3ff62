"""Streams are trimmed below what every group acknowledged — never an entry still needed."""

from __future__ import annotations

from pathlib import Path

from redis.asyncio import Redis

from schemas.events import CloudEvent
from services.bootstrap import Runtime
from services.core import streams
from services.core.bus import RedisPublisher
from services.core.settings import Settings
from services.trimmer import parse_id, trim_acknowledged
from tests import factories
from tests.integration.conftest import eventually, principals_config

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
