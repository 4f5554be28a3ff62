"""The server a one-shot command (``liaison inbox``, ``ack``, ``import``, ``dlq``) talks to."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from services.core.config import ConfigError
from services.core.private import data_directory, describe_data_dir
from services.core.redis_client import RedisTarget, configured_target, connect
from services.core.redis_server import EmbeddedRedis
from services.core.settings import Settings


@asynccontextmanager
async def connect_redis(settings: Settings, *, create: bool = False) -> AsyncIterator[Redis]:
    """The configured server, else the running embedded one, else a short-lived embedded one.

    Without ``create`` (every command but ``import``) the data directory and the
    embedded server's data must already exist: a command run in the wrong
    directory says which ``LIAISON_DATA_DIR`` it looked at instead of starting
    an empty server and showing an empty system as if it were the real one.
    """
    embedded = None
    nodes, master = settings.sentinel_nodes, settings.redis_sentinel_master
    url: str | RedisTarget | None = configured_target(settings.redis_url, nodes, master)
    if url is None:
        directory = data_directory(settings, create=create) / "redis"
        url = await _answering(_url_in(directory / "url"))
        if url is None:
            if not create and not (directory / "appendonlydir").is_dir():
                raise ConfigError(
                    f"no server data: {describe_data_dir(settings)} holds none "
                    "(nothing has run there); run this where `liaison up` keeps its data, or "
                    "set LIAISON_DATA_DIR"
                )
            embedded = EmbeddedRedis(directory, appendfsync=settings.appendfsync)
            url = embedded.start()
    client = connect(url)
    try:
        yield client
    finally:
        await client.aclose()
        if embedded is not None:
            embedded.stop()


def _url_in(url_file: Path) -> str | None:
    """The URL a running embedded server left in its data directory, if any."""
    try:
        return url_file.read_text().strip()
    except FileNotFoundError:
        return None


async def _answering(url: str | None) -> str | None:
    """``url`` if a server answers there (a ``liaison up`` is running), else None."""
    if url is None:
        return None
    probe = Redis.from_url(url)
    try:
        await probe.ping()
    except (RedisConnectionError, OSError):
        return None
    finally:
        await probe.aclose()
    return url
