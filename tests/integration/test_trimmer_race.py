"""The trimmer reads a stream's groups, then their pending lists: the two reads are not one.

Between ``XINFO GROUPS`` (which says a group has entries pending) and ``XPENDING`` the
group may acknowledge them all; ``XPENDING`` then has no lowest id. Reproduced here
deterministically on the real server: the client acknowledges everything right after
answering ``XINFO GROUPS``.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from services.trimmer import parse_id, still_needed_from, trim_acknowledged

STREAM = "{liaison}:stream:test-trim-race"
HOUR_MS = 3_600_000


class AcksAfterInfo(Redis):
    """A real client that lets the group acknowledge all it holds just after XINFO GROUPS."""

    async def xinfo_groups(self, name: Any) -> Any:
        groups = await super().xinfo_groups(name)
        for group in groups:
            rows = await self.xpending_range(name, group["name"], "-", "+", 10_000)
            ids = [row["message_id"] for row in rows]
            if ids:
                await self.xack(name, group["name"], *ids)
        return groups


async def test_a_group_acknowledging_between_the_two_reads_is_no_error(redis_url: str) -> None:
    client = AcksAfterInfo.from_url(redis_url)
    try:
        await client.xgroup_create(STREAM, "g", id="0", mkstream=True)
        ids = [await client.xadd(STREAM, {"n": i}) for i in range(300)]
        await client.xreadgroup("g", "c", {STREAM: ">"}, count=300)  # all read, all pending

        floor = await still_needed_from(client, STREAM)
        # Nothing pending any more: the group needs what it has not read, after the last id.
        assert floor == parse_id(ids[-1])
        removed = await trim_acknowledged(
            client, [STREAM], 0, now_ms=parse_id(ids[-1])[0] + HOUR_MS
        )
        assert removed > 0
        assert await client.xlen(STREAM) == 300 - removed
    finally:
        await client.aclose()
