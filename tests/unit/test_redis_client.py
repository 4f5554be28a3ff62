"""hiredis packs commands byte for byte as redis-py would."""

from __future__ import annotations

import pytest
from redis.asyncio.connection import Connection
from redis.typing import EncodableT

from services.core.redis_client import HiredisConnection

COMMANDS: list[tuple[EncodableT, ...]] = [
    ("PING",),
    ("CONFIG GET", "appendfsync"),
    ("XADD", "{liaison}:stream:alerts", "*", "__data__", '{"summary":"Ойбек — героин"}'),
    ("EVALSHA", "a" * 40, 2, "k1", "k2", b"\xff\x00bytes", 1.5, 0, -7, 10**15),
    ("ZADD", "z", 0.1 + 0.2, "m", 1e20, "n", 1764000000.123456, "o"),
    ("HSET", "h", "f", "x" * 100_000),  # larger than redis-py's buffer cut-off
    ("SET", "k", memoryview(b"view")),
    ("SET", "k", bytearray(b"array")),  # not hiredis's: redis-py's packer takes it
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: str(a[0]))
def test_packed_like_redis_py(args: tuple[EncodableT, ...]) -> None:
    ours = b"".join(HiredisConnection().pack_command(*args))
    theirs = b"".join(bytes(part) for part in Connection().pack_command(*args))
    assert ours == theirs
