"""``dlq list`` and ``dlq retry``: re-driving dead letters once their cause is fixed."""

from __future__ import annotations

import json
from importlib import resources

import pytest
import yaml
from redis.asyncio import Redis

from schemas.topology import Topology, default_topology, parse_topology
from services.core import streams
from services.core.bus import dead_letter, ensure_groups
from services.core.config import Principal, Role
from services.ingest import dlq
from tests import factories
from tests.integration.conftest import principals_config


def topology_with(unit: str) -> Topology:
    """The default topology plus one Uzbek BLO (the "fix" of an unknown-unit error)."""
    doc = yaml.safe_load(resources.files("schemas").joinpath("topology.yaml").read_text("utf-8"))
    doc["units"].append(
        {"id": unit, "kind": "blo", "country": "UZ", "name": unit, "borders": ["TJ"]}
    )
    return parse_topology(doc)


async def _events(redis: Redis, stream: str) -> list[dict[str, object]]:
    return [json.loads(f[streams.EVENT_FIELD.encode()]) for _, f in await redis.xrange(stream)]


NEWPOST = Principal(
    name="newpost", role=Role.PUBLISHER, token_sha256="0" * 64, units=("BLO-NEWPOST",)
)
PRINCIPALS = principals_config().principals


async def test_an_ingress_entry_is_kept_until_its_cause_is_fixed(redis: Redis) -> None:
    await ensure_groups(redis)
    event = factories.seizure(unit="BLO-NEWPOST")
    origin, payload = streams.ingress_stream("newpost"), json.dumps(event)
    letter_id = await dead_letter(
        redis, origin=origin, reason="unknown unit", payload=payload, entry_id="1-0"
    )
    with pytest.raises(dlq.StillInvalid, match="no publisher 'newpost' in the configuration"):
        await dlq.retry(redis, letter_id, topology_with("BLO-NEWPOST"))
    with pytest.raises(dlq.StillInvalid, match="unknown unit 'BLO-NEWPOST'"):
        await dlq.retry(redis, letter_id, default_topology(), (NEWPOST,))
    assert [d.id for d in await dlq.list_dead_letters(redis)] == [letter_id]
    assert await redis.xlen(streams.SEIZURES) == 0

    done = await dlq.retry(redis, letter_id, topology_with("BLO-NEWPOST"), (NEWPOST,))
    assert done.startswith("published seizure.reported")
    assert await dlq.count(redis) == 0
    assert [e["id"] for e in await _events(redis, streams.SEIZURES)] == [event["id"]]


async def test_an_import_row_is_read_again_through_its_adapter(redis: Redis) -> None:
    await ensure_groups(redis)
    row = {"reg_no": "9", "date": "14.03.2024", "post": "Newpost BCP", "substance": "героин",
           "quantity": "1,5", "unit": "кг"}  # fmt: skip
    letter_id = await dead_letter(redis, origin="import:customs-csv", reason="post: unknown",
                                  payload=json.dumps(row, ensure_ascii=False), entry_id="f row 2")  # fmt: skip
    with pytest.raises(dlq.StillInvalid, match="post: unknown post 'Newpost BCP'"):
        await dlq.retry(redis, letter_id, default_topology())
    await dlq.retry(redis, letter_id, topology_with("BLO-NEWPOST"))
    [published] = await _events(redis, streams.SEIZURES)
    assert (published["id"], published["source"]) == ("SCC-9", "/units/BLO-NEWPOST")
    assert await dlq.count(redis) == 0


async def test_a_reretry_of_an_already_published_event_just_clears_it(redis: Redis) -> None:
    await ensure_groups(redis)
    event = json.dumps(factories.seizure())
    mia = streams.ingress_stream("uz-mia")
    first = await dead_letter(redis, origin=mia, reason="x", payload=event)
    second = await dead_letter(redis, origin=mia, reason="x", payload=event)
    await dlq.retry(redis, first, default_topology(), PRINCIPALS)
    again = await dlq.retry(redis, second, default_topology(), PRINCIPALS)
    assert again.startswith("was already published")
    assert await redis.xlen(streams.SEIZURES) == 1
    assert await dlq.count(redis) == 0


async def test_a_poison_entry_goes_back_to_its_stream(redis: Redis) -> None:
    await ensure_groups(redis)
    event = json.dumps(factories.seizure())
    good = await dead_letter(redis, origin=streams.SEIZURES, reason="ledger: still failing",
                             payload=event, entry_id="5-0")  # fmt: skip
    bad = await dead_letter(redis, origin=streams.SEIZURES, reason="x", payload=b"\x00garbage")
    nowhere = await dead_letter(redis, origin="somewhere", reason="x", payload=event)
    assert (await dlq.retry(redis, good, default_topology())).startswith(
        f"appended to {streams.SEIZURES}"
    )
    assert [e["id"] for e in await _events(redis, streams.SEIZURES)] == [json.loads(event)["id"]]
    with pytest.raises(dlq.StillInvalid, match="not a CloudEvent"):
        await dlq.retry(redis, bad, default_topology())
    with pytest.raises(dlq.StillInvalid, match="origin 'somewhere'"):
        await dlq.retry(redis, nowhere, default_topology())
    assert [d.id for d in await dlq.list_dead_letters(redis)] == [bad, nowhere]


async def test_unknown_and_malformed_ids(redis: Redis) -> None:
    with pytest.raises(dlq.NotFound, match="no dead letter 1-1"):
        await dlq.retry(redis, "1-1", default_topology())
    with pytest.raises(dlq.NotFound, match="not a stream entry id"):
        await dlq.retry(redis, "banana", default_topology())
