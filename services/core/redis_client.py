"""How the services connect to Redis: redis-py's asyncio client, commands packed by hiredis.

redis-py's asyncio connections pack every command in pure Python (its
synchronous client uses hiredis when installed). The publish and inbox
scripts carry thousands of arguments per call, so packing was a tenth of
the notifier's time; hiredis's packer does the same in C, byte for byte.

Timeouts are chosen per client, never left to redis-py's defaults: redis-py 8
gives every connection a 5 s read timeout, which cuts any command that
blocks on the server for longer (an ``XREAD … BLOCK 15000`` killed the live
stream after 5 s of quiet). A client either blocks no longer than
:data:`COMMAND_TIMEOUT` allows (:data:`LONGEST_BLOCK`) or is built with
:func:`blocking_timeout` of its longest block; the stream readers' broker has
no read timeout at all (``services.core.streaming.redis_broker``). Pools are bounded and
*wait* for a free connection (up to :data:`POOL_TIMEOUT`) instead of failing
at once, and each kind of work has its own (see ``services.bootstrap``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import hiredis
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
    parse_url,
)
from redis.asyncio.sentinel import (
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedConnection,
    SentinelManagedSSLConnection,
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


class HiredisSentinelConnection(_HiredisPacking, SentinelManagedConnection):
    """A TCP connection to whichever server the Sentinels name primary, packed by hiredis."""


class HiredisSentinelSSLConnection(_HiredisPacking, SentinelManagedSSLConnection):
    """A TLS connection to the Sentinels' primary, packed by hiredis."""


class BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """A Sentinel pool that, like the single-server one, waits for a free connection."""


class SentinelRedis(Redis):
    """A client of the Sentinels' primary that, closed, also closes its Sentinel clients."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        """Close the client, its pool and the connections to the Sentinels."""
        await super().aclose(close_connection_pool)
        pool = self.connection_pool
        if isinstance(pool, SentinelConnectionPool):
            await pool.sentinel_manager.aclose()


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """Where a process's server is: one URL, or the primary that Sentinels name.

    With ``sentinels``, ``url`` gives only the scheme (``rediss``: TLS), credentials and
    database number; its host is ignored. The Sentinels are asked with the same credentials.
    """

    url: str
    sentinels: tuple[tuple[str, int], ...] = ()
    master: str = "liaison"

    def __str__(self) -> str:
        if not self.sentinels:
            return self.url
        nodes = ",".join(f"{host}:{port}" for host, port in self.sentinels)
        return f"sentinel://{nodes}/{self.master}"


_CONNECTIONS: dict[str, type[AbstractConnection]] = {
    "rediss": HiredisSSLConnection,
    "unix": HiredisUnixConnection,
}


LONGEST_BLOCK = 5.0
"""Seconds any command of an ordinary client may block on the server: ``WAITAOF`` of a strict
publish (``bus.FSYNC_TIMEOUT_MS``), the webhook worker's ``XREADGROUP … BLOCK`` (≤ 1 s).
Longer blocks need a client of their own (:func:`blocking_timeout`)."""
BLOCK_MARGIN = 10.0
"""Seconds a client waits beyond its longest block (a busy server, a slow network)."""


def blocking_timeout(block: float) -> float:
    """The socket timeout of a client whose commands block on the server up to ``block`` s."""
    return block + BLOCK_MARGIN


COMMAND_TIMEOUT = blocking_timeout(LONGEST_BLOCK)
"""Seconds an ordinary client waits for a reply: above its longest block, short enough to
notice a server that stopped answering sooner than TCP keepalive would (~45 s)."""
POOL_TIMEOUT = 5.0
"""Seconds a command waits for a free connection of its pool before failing (as an outage)."""
MAX_CONNECTIONS = 100


def connect(
    url: str | RedisTarget,
    *,
    socket_timeout: float | None = COMMAND_TIMEOUT,
    max_connections: int = MAX_CONNECTIONS,
    pool_timeout: float | None = POOL_TIMEOUT,
    **options: Any,
) -> Redis:
    """A client of ``url`` (``redis://``, ``rediss://`` or ``unix://``) with hiredis packing.

    At most ``max_connections`` at once; a command finding them all busy waits up to
    ``pool_timeout`` s for one. ``socket_timeout`` must exceed the longest time any of the
    client's commands blocks on the server (:func:`blocking_timeout`); ``None``: no read
    timeout (a dead peer is then noticed by TCP keepalive only). A :class:`RedisTarget` with
    Sentinels gives a client of the current primary: a connection that finds its server
    demoted (``READONLY``) or gone is dropped, and the next one asks the Sentinels again.
    """
    if isinstance(url, RedisTarget):
        if url.sentinels:
            return _primary_of(
                url,
                socket_timeout=socket_timeout,
                max_connections=max_connections,
                pool_timeout=pool_timeout,
                **options,
            )
        url = url.url
    scheme = url.partition("://")[0]
    pool = BlockingConnectionPool.from_url(
        url,
        connection_class=_CONNECTIONS.get(scheme, HiredisConnection),
        max_connections=max_connections,
        timeout=pool_timeout,
        socket_timeout=socket_timeout,
        **options,
    )
    return Redis.from_pool(pool)


def configured_target(
    url: str | None, sentinels: tuple[tuple[str, int], ...], master: str
) -> RedisTarget | None:
    """The server the settings name (``REDIS_URL``, ``REDIS_SENTINELS``), or None: embedded."""
    if sentinels:
        return RedisTarget(url or "redis://", sentinels, master)
    return RedisTarget(url) if url else None


SENTINEL_TIMEOUT = 2.0
"""Seconds a Sentinel may take to answer "which server is the primary?" before the next is
asked: a hung or cut-off Sentinel must not hold every reconnection for a command timeout."""


def sentinel_options(target: RedisTarget) -> dict[str, Any]:
    """Connection options of ``target``'s servers that its URL gives: credentials, database,
    TLS (the host and port come from the Sentinels)."""
    options: dict[str, Any] = dict(parse_url(target.url)) if "://" in target.url else {}
    tls = options.pop("connection_class", None) is SSLConnection or target.url.startswith("rediss")
    for key in ("host", "port", "path"):
        options.pop(key, None)
    options["connection_class"] = HiredisSentinelSSLConnection if tls else HiredisSentinelConnection
    return options


def _primary_of(
    target: RedisTarget,
    *,
    socket_timeout: float | None,
    max_connections: int,
    pool_timeout: float | None,
    **options: Any,
) -> Redis:
    """A client of the primary ``target``'s Sentinels name now (and after any failover)."""
    server = sentinel_options(target)
    asking = {key: server[key] for key in ("username", "password") if server.get(key) is not None}
    asking |= {"socket_timeout": SENTINEL_TIMEOUT, "socket_connect_timeout": SENTINEL_TIMEOUT}
    sentinel = Sentinel(list(target.sentinels), sentinel_kwargs=asking)
    client: Redis = sentinel.master_for(
        target.master,
        redis_class=SentinelRedis,
        connection_pool_class=BlockingSentinelPool,
        max_connections=max_connections,
        timeout=pool_timeout,
        socket_timeout=socket_timeout,
        **server,
        **options,
    )
    return client
