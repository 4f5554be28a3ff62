"""The Redis ingress: agency systems XADD raw events to their publisher's stream; ingest
forwards or dead-letters them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from redis.asyncio import Redis

from services.bootstrap import Runtime
from services.core import streams
from services.ingest import dlq
from services.ingest.screening import INLINE_MAX
from tests import factories
from tests.integration.conftest import eventually

MIA = streams.ingress_stream("uz-mia")  # publishes for IMT-GULISTAN
CUSTOMS = streams.ingress_stream("uz-customs")  # for BLO-OYBEK and BLO-AYRITOM


async def _pending(redis: Redis) -> int:
    pending = 0
    for stream in (MIA, CUSTOMS):
        groups: Any = await redis.xinfo_groups(stream)
        group = next(g for g in groups if g["name"] == streams.INGEST_GROUP.encode())
        pending += int(group["pending"])
    return pending


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
    for stream, event in ((MIA, seizure), (CUSTOMS, alert), (MIA, seizure)):  # a duplicate
        await redis.xadd(stream, {streams.EVENT_FIELD: json.dumps(event)})
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
    ids = [(await redis.xadd(MIA, e)).decode() for e in entries]
    await _settled(redis, published=1, dead=6)
    letters = await dlq.list_dead_letters(redis)
    by_entry = {letter.entry_id: letter for letter in letters}
    assert {letter.origin for letter in letters} == {MIA}
    assert "source: unknown unit 'IMT-ATLANTIS'" in by_entry[ids[0]].reason
    assert by_entry[ids[1]].reason.startswith("not JSON")
    assert by_entry[ids[2]].reason == "not UTF-8 text"
    assert by_entry[ids[3]].reason == "no CloudEvent: put its JSON in field __data__"
    assert "source" in by_entry[ids[4]].reason
    assert "data.drugs.0.quantity" in by_entry[ids[5]].reason
    assert by_entry[ids[0]].payload == json.dumps(unknown_unit).encode()


async def test_an_agency_publishes_for_its_own_units_only(runtime: Runtime) -> None:
    """As over HTTP (403): the ingress stream says whose system wrote the entry."""
    redis = runtime.redis
    theirs, ours = factories.seizure(unit="IMT-GULISTAN"), factories.seizure(unit="BLO-OYBEK")
    foreign = await redis.xadd(CUSTOMS, {streams.EVENT_FIELD: json.dumps(theirs)})
    await redis.xadd(CUSTOMS, {streams.EVENT_FIELD: json.dumps(ours)})
    await _settled(redis, published=1, dead=1)
    [letter] = await dlq.list_dead_letters(redis)
    assert (letter.origin, letter.entry_id) == (CUSTOMS, foreign.decode())
    assert letter.reason == "uz-customs may not publish for IMT-GULISTAN"
    with pytest.raises(dlq.StillInvalid, match="may not publish for IMT-GULISTAN"):
        await dlq.retry(redis, letter.id, runtime.topology, runtime.config.principals)


async def test_a_large_entry_is_screened_off_the_event_loop(runtime: Runtime) -> None:
    redis = runtime.redis
    big = factories.alert()
    vehicle = {"plate": "01 TJ 000 AA", "description": "white KAMAZ, blue tarpaulin " * 10}
    big["data"]["vehicles"] = [vehicle] * 100
    junk = {**factories.alert(), **{f"k{k}": k for k in range(2000)}}
    payloads = [json.dumps(big), json.dumps(junk)]
    assert all(len(p) > INLINE_MAX for p in payloads)
    ids = [(await redis.xadd(CUSTOMS, {streams.EVENT_FIELD: p})).decode() for p in payloads]
    await _settled(redis, published=1, dead=1)
    [letter] = await dlq.list_dead_letters(redis)
    assert letter.entry_id == ids[1]
    assert letter.reason.startswith("invalid event: k0: Extra inputs are not permitted")


async def test_an_integer_too_long_to_read_is_dead_lettered(runtime: Runtime) -> None:
    redis = runtime.redis
    await redis.xadd(MIA, {streams.EVENT_FIELD: b'{"detained": ' + b"9" * 5000 + b"}"})
    await _settled(redis, published=0, dead=1)
    [letter] = await dlq.list_dead_letters(redis)
    assert letter.reason.startswith("not JSON we read: Exceeds the limit (4300 digits)")
