"""Each Redis client waits for a reply longer than its longest blocking command.

redis-py 8 gives every connection a 5 s read timeout; a command that blocks on the server
longer than its client's timeout is cut and its connection dropped (the live stream died
after 5 s of quiet that way: ``test_live_streams``). The timeouts are chosen per client.
"""

from __future__ import annotations

from redis.asyncio import Redis

from services.bootstrap import Runtime
from services.core import bus
from services.core.redis_client import LONGEST_BLOCK
from services.notifier import live
from services.notifier.webhooks import WorkerOptions


def _read_timeout(client: Redis) -> float:
    timeout: float = client.connection_pool.connection_kwargs["socket_timeout"]
    return timeout


async def test_each_client_outwaits_its_longest_block(runtime: Runtime) -> None:
    assert bus.FSYNC_TIMEOUT_MS / 1000 <= LONGEST_BLOCK  # WAITAOF of a strict publish
    assert WorkerOptions().block <= LONGEST_BLOCK  # the webhook worker's XREADGROUP
    for ordinary in (runtime.redis, runtime.api_redis):
        assert _read_timeout(ordinary) > LONGEST_BLOCK
    assert _read_timeout(runtime.live_redis) > live.READ_BLOCK  # one XREAD per unit
