"""README, configuration: "sign a checkpoint every N entries, or this long after new ones"
(``CHECKPOINT_EVERY`` / ``CHECKPOINT_INTERVAL``), by a running deployment, before it stops."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from redis.asyncio import Redis

from schemas.events import CloudEvent
from services.bootstrap import Runtime
from services.core.bus import RedisPublisher, ensure_groups
from services.core.settings import Settings
from tests import factories
from tests.integration.conftest import eventually, principals_config


def _settings(redis_url: str, data_dir: Path, every: int, interval: timedelta) -> Settings:
    return Settings(data_dir=data_dir, redis_url=redis_url, database_url=None, config=None,
                    checkpoint_every=every, checkpoint_interval=interval)  # fmt: skip


async def _publish(redis: Redis, count: int) -> None:
    await ensure_groups(redis)
    events = [CloudEvent.model_validate(factories.seizure()) for _ in range(count)]
    assert all(await RedisPublisher(redis).publish(events))


async def test_entries_left_waiting_are_signed_after_the_interval(
    redis_url: str, redis: Redis, data_dir: Path
) -> None:
    settings = _settings(redis_url, data_dir, every=1000, interval=timedelta(seconds=1))
    async with Runtime(settings, principals_config()) as runtime:
        await _publish(redis, 3)

        async def sizes(expected: list[int]) -> bool:
            return [c.size for c in await runtime.ledger.checkpoints()] == expected

        await eventually(lambda: sizes([3]))  # a ledger's first entries are signed at once
        await _publish(redis, 2)
        # two entries, far fewer than every, and nothing more comes: signed after the interval
        await eventually(lambda: sizes([3, 5]), timeout=30)
        checkpoint = (await runtime.ledger.checkpoints())[-1]
        assert checkpoint.policy is not None
        assert (checkpoint.policy.every, checkpoint.policy.interval) == (1000, 1.0)


async def test_every_n_entries_a_checkpoint_and_the_rest_when_it_stops(
    redis_url: str, redis: Redis, data_dir: Path
) -> None:
    settings = _settings(redis_url, data_dir, every=4, interval=timedelta(hours=1))
    async with Runtime(settings, principals_config()) as runtime:
        await _publish(redis, 10)

        async def recorded() -> bool:
            return await runtime.ledger.count() == 10

        await eventually(recorded)
        # mid-batch if need be; the two left wait for the interval (an hour) or the stop
        assert [c.size for c in await runtime.ledger.checkpoints()] == [4, 8]
    reopened = Runtime(settings, principals_config(), services=("ledger",))
    async with reopened:
        assert [c.size for c in await reopened.ledger.checkpoints()] == [4, 8, 10]
