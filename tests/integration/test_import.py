"""Importing agency files into the canonical streams of a real server."""

from __future__ import annotations

import io
from importlib import resources

from redis.asyncio import Redis

from schemas.topology import default_topology
from services.core import streams
from services.core.alert_register import AlertRegister
from services.core.bus import RedisPublisher, ensure_groups
from services.ingest import dlq
from services.ingest.adapters import ADAPTERS
from services.ingest.importer import BATCH, ImportSummary, import_file

SAMPLES = resources.files("services.ingest.adapters") / "samples"


async def _import(
    redis: Redis, adapter: str, data: bytes, dead_letters: bool = False
) -> ImportSummary:
    return await import_file(
        ADAPTERS[adapter], io.BytesIO(data), default_topology(), RedisPublisher(redis),
        owners=AlertRegister(redis), dead_letters=redis if dead_letters else None,
        label="register.csv",
    )  # fmt: skip


async def test_every_sample_imports_and_a_reimport_publishes_nothing_new(redis: Redis) -> None:
    await ensure_groups(redis)
    for adapter, sample, stream in (("customs-csv", "scc-seizures.csv", streams.SEIZURES),
                                    ("mia-jsonl", "mia-cases.jsonl", streams.SEIZURES),
                                    ("border-xml", "border-alerts.xml", streams.ALERTS)):  # fmt: skip
        data = (SAMPLES / sample).read_bytes()
        before = await redis.xlen(stream)
        first = await _import(redis, adapter, data)
        again = await _import(redis, adapter, data)
        assert (first.published, first.duplicates, first.rejected_rows) == (first.rows, 0, 0)
        assert (again.published, again.duplicates) == (0, first.rows)
        assert await redis.xlen(stream) == before + first.rows


async def test_a_long_file_goes_in_several_batches(redis: Redis) -> None:
    await ensure_groups(redis)
    rows = [f"{n};14.03.2024;Oybek;heroin;{n + 1};g" for n in range(BATCH * 2 + 7)]
    data = ("reg_no;date;post;substance;quantity;unit\n" + "\n".join(rows)).encode()
    summary = await _import(redis, "customs-csv", data)
    assert summary.published == BATCH * 2 + 7
    assert await redis.xlen(streams.SEIZURES) == BATCH * 2 + 7


async def test_rejected_rows_go_to_the_dead_letters_only_when_asked(redis: Redis) -> None:
    await ensure_groups(redis)
    data = b"reg_no;date;post;substance;quantity;unit\n1;14.03.2024;Nowhere;heroin;1;kg\n2;14.03.2024;Oybek;heroin;1;kg\n"
    summary = await _import(redis, "customs-csv", data)
    assert (summary.published, summary.rejected_rows) == (1, 1)
    assert await dlq.count(redis) == 0
    await _import(redis, "customs-csv", data, dead_letters=True)
    [letter] = await dlq.list_dead_letters(redis)
    assert letter.origin == "import:customs-csv"
    assert letter.entry_id == "register.csv row 2"
    assert letter.reason.startswith("post: unknown post 'Nowhere'")
    assert b'"post": "Nowhere"' in letter.payload
