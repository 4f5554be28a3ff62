"""The streams' backlog at one moment, read in one pipelined round trip (for ``/metrics``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from services.core import streams


@dataclass(frozen=True, slots=True)
class GroupFigures:
    """One consumer group of one stream, as ``XINFO GROUPS`` reports it."""

    stream: str
    group: str
    pending: int
    lag: int | None
    """Entries not yet delivered to the group; ``None`` when the server cannot tell
    (entries were deleted in the range it would count)."""


@dataclass(frozen=True, slots=True)
class StreamFigures:
    """The streams' backlog at one moment."""

    lengths: dict[str, int] = field(default_factory=dict)
    groups: tuple[GroupFigures, ...] = ()
    dead_letters: int = 0


async def read_streams(redis: Redis, ingress: Sequence[str] = ()) -> StreamFigures:
    """Every consumed stream's (and these ingress streams') length and groups, and the dead
    letters: one round trip."""
    names = [*streams.GROUPS, *ingress]
    pipe = redis.pipeline(transaction=False)
    for name in names:
        pipe.xlen(name)
        pipe.xinfo_groups(name)
    pipe.xlen(streams.DEAD_LETTERS)
    replies: list[Any] = await pipe.execute(raise_on_error=False)
    lengths: dict[str, int] = {}
    groups: list[GroupFigures] = []
    for i, name in enumerate(names):
        length, infos = replies[2 * i], replies[2 * i + 1]
        if isinstance(length, int):
            lengths[name] = length
        if isinstance(infos, list):  # an error (no such stream yet) leaves the stream out
            groups += [_group(name, info) for info in infos]
    dead = replies[-1]
    if isinstance(dead, Exception):
        raise dead
    return StreamFigures(lengths, tuple(groups), int(dead))


def _group(stream: str, info: dict[str, Any]) -> GroupFigures:
    name = info["name"]
    lag = info.get("lag")
    return GroupFigures(
        stream=stream,
        group=name.decode() if isinstance(name, bytes) else str(name),
        pending=int(info["pending"]),
        lag=None if lag is None else int(lag),
    )
