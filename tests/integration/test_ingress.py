"""The Redis ingress: agency systems XADD raw events; ingest forwards or dead-letters them."""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis

from services import streams
from services.bootstrap import Runtime
from services.ingest import dlq
from tests import factories
from tests.integration.conftest import eventually


async def _pending(redis: Redis) -> int:
    groups: Any = await redis.xinfo_groups(streams.INGRESS)
    return int(next(g for g in groups if g["name"] == streams.INGEST_GROUP.encode())["pending"])


async def _settled(redis: Redis, published: int, dead: int) -> None:
    async def check() -> bool:
        return (
            await redis.xlen(streams.SEIZURES) + await redis.xlen(streams.ALERTS) == published
            and await dlq.count(redis) == dead
            and await _pending(redis) == 0
        )

    await eventually(check)


async def test_valid_entries_reach_their_canonical_streams_once(runtime: Runtime) -> None:
    redis = runtime.redis
    seizure, alert = factories.seizure(), factories.alert()
    for event in (seizure, alert, seizure):  # the repeat is a duplicate, published once
        await redis.xadd(streams.INGRESS, {streams.EVENT_FIELD: json.dumps(event)})
    await _settled(redis, published=2, dead=0)
    [(_, fields)] = await redis.xrange(streams.SEIZURES)
    assert json.loads(fields[streams.EVENT_FIELD.encode()])["id"] == seizure["id"]
    [(_, fields)] = await redis.xrange(streams.ALERTS)
    assert json.loads(fields[streams.EVENT_FIELD.encode()])["id"] == alert["id"]


async def test_invalid_entries_are_dead_lettered_with_the_reason(runtime: Runtime) -> None:
    redis = runtime.redis
    unknown_unit = factories.seizure(unit="IMT-ATLANTIS")
    receipt = factories.event("alert.delivered", "NIAC-UZ", {})
    bad_quantity = factories.seizure(grams=-5)
    entries = [
        {streams.EVENT_FIELD: json.dumps(unknown_unit)},
        {streams.EVENT_FIELD: "{not json"},
        {streams.EVENT_FIELD: b'{"id": "\xff"}'},
        {"event": json.dumps(factories.seizure())},  # the wrong field
        {streams.EVENT_FIELD: json.dumps(receipt)},
        {streams.EVENT_FIELD: json.dumps(bad_quantity)},
        {streams.EVENT_FIELD: json.dumps(factories.seizure())},  # good, among them
    ]
    ids = [(await redis.xadd(streams.INGRESS, e)).decode() for e in entries]
    await _settled(redis, published=1, dead=6)
    letters = await dlq.list_dead_letters(redis)
    by_entry = {letter.entry_id: letter for letter in letters}
    assert {letter.origin for letter in letters} == {streams.INGRESS}
    assert "source: unknown unit 'IMT-ATLANTIS'" in by_entry[ids[0]].reason
    assert by_entry[ids[1]].reason.startswith("not JSON")
    assert by_entry[ids[2]].reason == "not UTF-8 text"
    assert by_entry[ids[3]].reason == "no CloudEvent: put its JSON in field __data__"
    assert "source" in by_entry[ids[4]].reason
    assert "data.drugs.0.quantity" in by_entry[ids[5]].reason
    assert by_entry[ids[0]].payload == json.dumps(unknown_unit).encode()
