"""``liaison ledger restore``: a ledger re-created from its bundle, on SQLite and PostgreSQL
(issue 21).

A ledger with several signed checkpoints is exported; the bundle is restored into an empty
database of the same backend: every row of both tables is the same, byte for byte, the
restored ledger verifies against the trusted key, and the next append continues the chain
(``seq``, hashes, checkpoints). Refused, with nothing written: a bundle altered after export,
one signed by a key nobody trusts, a database that is not empty, an entry field this release
does not know.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from schemas.events import CloudEvent
from services.ledger import audit, witness, witness_cli, witness_store
from services.ledger.engine import create_engine
from services.ledger.restore import RestoreRefused, restore_bundle
from services.ledger.signing import load_or_create_signer
from services.ledger.store import CheckpointPolicy, SqlLedger
from services.ledger.witness import WitnessKey
from tests import factories
from tests.integration.ledger_backends import fresh_postgres_database, postgres_server

__all__ = ["postgres_server"]  # the fixture, imported so pytest finds it here

pytestmark = pytest.mark.integration
POLICY = CheckpointPolicy(every=4)
ORIGIN = "restore.example/ledger"


@pytest.fixture(params=["sqlite", "postgresql"])
async def databases(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[list[SqlLedger]]:
    """Two ledgers on two fresh databases of the backend, with the same signing key."""
    signer = load_or_create_signer(tmp_path / "key.pem")
    made = []
    for name in ("original", "restored"):
        if request.param == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp_path / f'{name}.sqlite3'}"
        else:
            url = await fresh_postgres_database(request.getfixturevalue("postgres_server"))
        ledger = SqlLedger(create_engine(url), signer, POLICY)
        await ledger.create_schema()
        made.append(ledger)
    yield made
    for ledger in made:
        await ledger.close()


def _events(n: int, start: int = 0) -> list[CloudEvent]:
    events = []
    for i in range(start, start + n):
        raw = factories.alert() if i % 3 == 0 else factories.seizure(grams=1000 + i)
        events.append(CloudEvent.model_validate(raw))
    return events


async def _tables(ledger: SqlLedger) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    async with ledger.engine.connect() as conn:
        entries = (await conn.execute(text("SELECT * FROM ledger_entries ORDER BY seq"))).all()
        marks = (await conn.execute(text("SELECT * FROM ledger_checkpoints ORDER BY size"))).all()
    return [tuple(r) for r in entries], [tuple(r) for r in marks]


async def _exported(ledger: SqlLedger, path: Path) -> Path:
    for start in range(0, 10, 5):  # two appends: checkpoints at 4 and 8, then the head at 10
        await ledger.append(_events(5, start))
    with path.open("w", encoding="utf-8") as out:
        await audit.export_bundle(ledger, out)
    return path


async def test_a_restored_ledger_is_the_same_and_continues(
    databases: list[SqlLedger], tmp_path: Path
) -> None:
    original, restored = databases
    bundle = await _exported(original, tmp_path / "bundle.jsonl")
    assert original.signer is not None
    keys = {original.signer.key_id: original.signer.public_key}

    done = await restore_bundle(restored, bundle, keys)

    assert (done.entries, done.checkpoints) == (10, 3)
    assert await _tables(restored) == await _tables(original)  # byte for byte, columns too
    assert done.report.ok
    assert done.report.origin_verified
    more = _events(3, 100)
    assert (await restored.append(more)).appended == (11, 12, 13)  # seq continues
    await restored.checkpoint_if_due(force=True)
    report = await restored.verify(keys)
    assert report.ok
    assert report.count == 13
    assert report.checkpoints == 4


async def test_a_bundle_that_does_not_verify_is_refused(
    databases: list[SqlLedger], tmp_path: Path
) -> None:
    original, restored = databases
    bundle = await _exported(original, tmp_path / "bundle.jsonl")
    assert original.signer is not None
    keys = {original.signer.key_id: original.signer.public_key}
    edited = tmp_path / "edited.jsonl"
    edited.write_text(bundle.read_text().replace('"grams', '"gramz', 1).replace("1001", "9001"))
    with pytest.raises(RestoreRefused, match="broken") as broken:
        await restore_bundle(restored, edited, keys)
    assert broken.value.broken
    stranger = load_or_create_signer(tmp_path / "stranger.pem")
    with pytest.raises(RestoreRefused, match="does not verify with a trusted key"):
        await restore_bundle(restored, bundle, {stranger.key_id: stranger.public_key})
    with pytest.raises(RestoreRefused, match="no trusted key") as unverified:
        await restore_bundle(restored, bundle, {})
    assert unverified.value.unverified
    assert await _tables(restored) == ([], [])  # nothing written

    await restore_bundle(restored, bundle, keys)
    with pytest.raises(RestoreRefused, match="already holds a ledger"):
        await restore_bundle(restored, bundle, keys)


async def test_unknown_fields_refuse_an_entry_and_pass_a_header(
    databases: list[SqlLedger], tmp_path: Path
) -> None:
    original, restored = databases
    bundle = await _exported(original, tmp_path / "bundle.jsonl")
    assert original.signer is not None
    keys = {original.signer.key_id: original.signer.public_key}
    lines = [json.loads(line) for line in bundle.read_text().splitlines()]
    later = tmp_path / "later.jsonl"
    entry = next(i for i, line in enumerate(lines) if "entry" in line)
    lines[entry]["entry"]["witness"] = "a field of a later format"
    later.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(RestoreRefused, match=r"line \d+: entry field\(s\) witness unknown"):
        await restore_bundle(restored, later, keys)
    assert await _tables(restored) == ([], [])

    lines[entry]["entry"].pop("witness")
    lines[0]["anchors"] = ["a header field of a later format"]
    later.write_text("".join(json.dumps(line) + "\n" for line in lines))
    done = await restore_bundle(restored, later, keys)
    assert done.ignored_header_fields == ("anchors",)
    assert await _tables(restored) == await _tables(original)


async def test_a_witnessed_ledger_is_restored_with_its_cosignatures(
    databases: list[SqlLedger], tmp_path: Path
) -> None:
    """Issue 19 meets issue 21: a bundle carries the witnesses' cosignatures (and the origin in
    its header); the restored ledger keeps them, so it is still held to what they vouched."""
    original, restored = databases
    for start in range(0, 10, 5):
        await original.append(_events(5, start))
    private = Ed25519PrivateKey.generate()
    vkeys = {"witness.example": WitnessKey("witness.example", private.public_key())}
    checkpoint = await witness_store.latest_checkpoint(original.engine)
    assert checkpoint is not None
    made = witness.cosign(
        private, "witness.example", ORIGIN, (checkpoint.size, checkpoint.head_hash), 1000
    )
    [(_, new)] = await witness_store.accept(original.engine, ORIGIN, made.note(ORIGIN), vkeys)
    assert new
    bundle = tmp_path / "bundle.jsonl"
    with bundle.open("w", encoding="utf-8") as out:
        await audit.export_bundle(original, out, origin=ORIGIN)
    assert original.signer is not None
    keys = {original.signer.key_id: original.signer.public_key}

    done = await restore_bundle(restored, bundle, keys)

    assert done.report.ok
    assert done.ignored_header_fields == ()  # the origin is known, not dropped with a note
    assert await witness_store.load(restored.engine) == [made]
    heads = await witness_store.heads_at(restored.engine, [made.size])
    seen = witness.check([made], vkeys, ORIGIN, heads, done.entries)
    assert witness_cli.judge(done.report, seen, vkeys) == []  # nothing unwitnessed
