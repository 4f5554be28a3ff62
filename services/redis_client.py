"""How the services connect to Redis: redis-py's asyncio client, commands packed by hiredis.

redis-py's asyncio connections pack every command in pure Python (its
synchronous client uses hiredis when installed). The publish and inbox
scripts carry thousands of arguments per call, so packing was a tenth of
the notifier's time; hiredis's packer does the same in C, byte for byte.
"""

from __future__ import annotations

from typing import Any

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.typing import EncodableT


class _HiredisPacking:
    """Mixin for a redis-py asyncio connection: ``pack_command`` in C."""

    def pack_command(self, *args: EncodableT) -> list[bytes]:
        if isinstance(args[0], str) and " " in args[0]:  # "CONFIG GET": one word per argument
            args = (*args[0].split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]  # type: ignore[arg-type]  # its stub says 1-tuple
        except TypeError:  # a type hiredis does not pack: redis-py's own encoder decides
            packed: list[bytes] = super().pack_command(*args)  # type: ignore[misc]
            return packed


class HiredisConnection(_HiredisPacking, Connection):
    """A TCP connection whose commands hiredis packs."""


class HiredisSSLConnection(_HiredisPacking, SSLConnection):
    """A TLS connection whose commands hiredis packs."""


class HiredisUnixConnection(_HiredisPacking, UnixDomainSocketConnection):
    """A Unix-socket connection (the embedded server's) whose commands hiredis packs."""


_CONNECTIONS: dict[str, type[AbstractConnection]] = {
    "rediss": HiredisSSLConnection,
    "unix": HiredisUnixConnection,
}


def connect(url: str, **options: Any) -> Redis:
    """A client of ``url`` (``redis://``, ``rediss://`` or ``unix://``) with hiredis packing."""
    scheme = url.partition("://")[0]
    connection_class = _CONNECTIONS.get(scheme, HiredisConnection)
    return Redis.from_url(url, connection_class=connection_class, **options)
