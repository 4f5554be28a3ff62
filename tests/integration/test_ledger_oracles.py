"""The ledger's published formats, checked against oracles written from the README alone.

"The ledger, for auditors" defines what an independent verifier recomputes:
the chain formula, the checkpoint message and its chain, ``index_hash``,
``key_id`` and the bundle format. Every other ledger test recomputes the
chain with the implementation's own ``entry_hash``, ``GENESIS`` and
``Checkpoint.message``, so a change to a separator, the genesis hash or the
message prefix leaves them green (issue 17). Here the expected values are
computed with ``hashlib``, ``json`` and ``cryptography`` directly, from the
README's definitions, and the stored rows are read with the standard
library's ``sqlite3``: nothing of ``services.ledger`` computes an expected
value. Both directions are checked: what the ledger writes matches the
oracle, and what the oracle writes (a bundle made here from the definitions)
is what the ledger's verifier accepts.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from schemas.events import CloudEvent
from services.ledger import audit
from services.ledger.engine import create_engine
from services.ledger.signing import load_or_create_signer, load_public_keys
from services.ledger.store import CheckpointPolicy, SqlLedger
from tests import factories

ZEROS = "0" * 64  # prev_hash(1), and a first checkpoint's prev: written out, not imported
UTC_TEXT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
EVERY = 3
SUMMARY = "КамАЗ с героином — Ойбек → Gulistan"  # noqa: RUF001 (Cyrillic on purpose)


# ----------------------------------------------------------------------------------------------
# The oracle: the README's definitions, nothing else


def chain_hash(prev_hash: str, seq: int, recorded_at: str, event: str) -> str:
    """hash(n) = SHA-256( bytes.fromhex(prev_hash(n)) ‖ UTF-8("<seq>\\n<recorded_at>\\n") ‖ UTF-8(event(n)) )"""
    return hashlib.sha256(
        bytes.fromhex(prev_hash) + f"{seq}\n{recorded_at}\n".encode() + event.encode("utf-8")
    ).hexdigest()


def v1_message(size: int, head_hash: str, signed_at: str) -> bytes:
    return f"liaison-ledger-checkpoint/v1\n{size}\n{head_hash}\n{signed_at}\n".encode()


def v2_message(
    size: int, head: str, signed_at: str, prev: str, every: int, interval_ms: int, index: str
) -> bytes:
    return (
        f"liaison-ledger-checkpoint/v2\n{size}\n{head}\n{signed_at}\n{prev}\n"
        f"{every}\n{interval_ms}\n{index}\n"
    ).encode()


def oracle_key_id(key: Ed25519PublicKey) -> str:
    """key_id = first 16 hex of SHA-256(raw public key)"""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def utc(time: str) -> str:
    """An RFC 3339 time as the README's UTC text, microseconds and ``Z``."""
    moment = datetime.fromisoformat(time).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def index_text(event: dict[str, Any]) -> str:
    """event_id U+0001 source U+0001 type U+0001 event_time U+0001 (subject U+0001 | U+0002)"""
    subject = event.get("subject")
    tail = "\x02" if subject is None else f"{subject}\x01"
    return (
        f"{event['id']}\x01{event['source']}\x01{event['type']}\x01{utc(event['time'])}\x01{tail}"
    )


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def no_nulls(value: Any) -> bool:
    if isinstance(value, dict):
        return all(v is not None and no_nulls(v) for v in value.values())
    if isinstance(value, list):
        return all(no_nulls(v) for v in value)
    return True


# ----------------------------------------------------------------------------------------------
# The ledger under test, on a SQLite file the oracle reads with sqlite3


@dataclass
class Written:
    ledger: SqlLedger
    database: Path
    key_path: Path


def _events() -> list[CloudEvent]:
    """Seizures and alerts: non-ASCII text, a subject, a time given in Uzbekistan's offset."""
    raw = [
        factories.seizure(grams=20032),
        factories.alert(time="2026-01-05T10:00:00+05:00"),
        factories.seizure(subject="case 12-3456/2024"),
        factories.event(
            "alert.raised",
            "BLO-OYBEK",
            {"severity": "flash", "summary": SUMMARY},
        ),
        *(factories.seizure(grams=1000 + n) for n in range(4)),
    ]
    return [CloudEvent.model_validate(ev) for ev in raw]


@pytest.fixture
async def written(tmp_path: Path) -> AsyncIterator[Written]:
    """8 events appended in two batches, checkpoints every 3, the head signed at the end."""
    database, key_path = tmp_path / "ledger.sqlite3", tmp_path / "signing-key.pem"
    ledger = SqlLedger(
        create_engine(f"sqlite+aiosqlite:///{database}"),
        load_or_create_signer(key_path),
        CheckpointPolicy(every=EVERY, interval=3600),
    )
    await ledger.create_schema()
    events = _events()
    await ledger.append(events[:5])
    await ledger.append(events[5:])
    await ledger.checkpoint_if_due(force=True)
    try:
        yield Written(ledger, database, key_path)
    finally:
        await ledger.close()


def _rows(database: Path, sql: str) -> list[sqlite3.Row]:
    with sqlite3.connect(database) as conn:
        conn.row_factory = sqlite3.Row
        return list(conn.execute(sql))


def _public_key(key_path: Path) -> Ed25519PublicKey:
    private = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(private, Ed25519PrivateKey)
    return private.public_key()


# ----------------------------------------------------------------------------------------------
# What the ledger writes matches the oracle


def test_the_oracle_matches_a_committed_vector() -> None:
    """A fixed vector, so the oracle itself cannot drift with the code.

    Derivation: SHA-256 of 32 zero bytes, then b"1\\n2026-01-05T05:00:00.000000Z\\n", then
    b'{"data":{},"id":"x"}' (``printf`` the three parts into ``sha256sum``)."""
    vector = chain_hash(ZEROS, 1, "2026-01-05T05:00:00.000000Z", '{"data":{},"id":"x"}')
    assert vector == "bd16939a42d044acb57f1a4fa9d59d60452a621ce1539c6a31eeadee516ffc35"


async def test_every_stored_entry_hashes_by_the_readme_formula(written: Written) -> None:
    rows = _rows(written.database, "SELECT * FROM ledger_entries ORDER BY seq")
    assert [row["seq"] for row in rows] == list(range(1, 9))
    prev = ZEROS
    for row in rows:
        assert row["prev_hash"] == prev, row["seq"]
        assert UTC_TEXT.fullmatch(row["recorded_at"]), row["recorded_at"]
        assert row["hash"] == chain_hash(prev, row["seq"], row["recorded_at"], row["event"])
        prev = row["hash"]


async def test_the_stored_text_is_the_readme_canonical_form(written: Written) -> None:
    for row in _rows(written.database, "SELECT seq, event FROM ledger_entries ORDER BY seq"):
        event = json.loads(row["event"])
        assert row["event"] == canonical(event), row["seq"]  # compact, sorted, UTF-8 kept
        assert no_nulls(event), row["seq"]
    texts = [r["event"] for r in _rows(written.database, "SELECT event FROM ledger_entries")]
    assert any(SUMMARY in text for text in texts)  # UTF-8 as is, not \\u-escaped


async def test_the_indexed_columns_are_what_the_readme_derives_from_the_text(
    written: Written,
) -> None:
    for row in _rows(written.database, "SELECT * FROM ledger_entries ORDER BY seq"):
        event = json.loads(row["event"])
        assert (row["event_id"], row["source"], row["type"], row["subject"]) == (
            event["id"],
            event["source"],
            event["type"],
            event.get("subject"),
        )
        assert row["event_time"] == utc(event["time"])


def _checkpoint_messages(written: Written) -> Iterator[tuple[sqlite3.Row, bytes]]:
    """Each stored checkpoint with the message the oracle says it signs (all v2 here)."""
    entries = _rows(written.database, "SELECT * FROM ledger_entries ORDER BY seq")
    checkpoints = _rows(written.database, "SELECT * FROM ledger_checkpoints ORDER BY size")
    prev, covered = ZEROS, 0
    for c in checkpoints:
        assert c["version"] == 2
        assert c["prev"] == prev, c["size"]
        assert (c["every"], c["interval_ms"]) == (EVERY, 3_600_000)
        assert UTC_TEXT.fullmatch(c["signed_at"]), c["signed_at"]
        assert c["head_hash"] == entries[c["size"] - 1]["hash"]
        newly = entries[covered : c["size"]]
        index = hashlib.sha256(
            "".join(index_text(json.loads(e["event"])) for e in newly).encode("utf-8")
        ).hexdigest()
        assert c["index_hash"] == index, c["size"]
        message = v2_message(
            c["size"], c["head_hash"], c["signed_at"], prev, EVERY, 3_600_000, index
        )
        yield c, message
        prev, covered = hashlib.sha256(message).hexdigest(), c["size"]


async def test_checkpoints_sign_the_readme_message_and_chain(written: Written) -> None:
    public = _public_key(written.key_path)
    sizes = []
    for checkpoint, message in _checkpoint_messages(written):
        sizes.append(checkpoint["size"])
        assert checkpoint["key_id"] == oracle_key_id(public)
        try:
            public.verify(bytes.fromhex(checkpoint["signature"]), message)
        except InvalidSignature:
            pytest.fail(f"checkpoint {checkpoint['size']}: not a signature of the README message")
    assert sizes == [3, 6, 8]  # every 3 (the second mid-batch), then the forced head


async def test_the_signing_key_is_created_readable_by_its_owner_only(written: Written) -> None:
    """README: the private key is created on first run with mode 0600 (wherever SIGNING_KEY
    puts it: the data directory's own tightening does not reach it there)."""
    assert written.key_path.stat().st_mode & 0o777 == 0o600


async def test_an_exported_bundle_has_the_readme_format(written: Written, tmp_path: Path) -> None:
    bundle = tmp_path / "ledger.bundle"
    with bundle.open("w", encoding="utf-8") as out:
        assert await audit.export_bundle(written.ledger, out) == 8
    lines = [json.loads(line) for line in bundle.read_text(encoding="utf-8").splitlines()]
    header, rest = lines[0], lines[1:]
    public = _public_key(written.key_path)
    assert header["format"] == "liaison-ledger-bundle/v2"
    carried = serialization.load_pem_public_key(header["public_key"].encode())
    assert isinstance(carried, Ed25519PublicKey)
    assert oracle_key_id(carried) == header["key_id"] == oracle_key_id(public)
    assert (header["checkpoint_every"], header["checkpoint_interval"]) == (EVERY, 3600)
    assert UTC_TEXT.fullmatch(header["exported_at"]) or datetime.fromisoformat(
        header["exported_at"]
    )
    kinds = [next(iter(line)) for line in rest]
    assert kinds == ["checkpoint"] * 3 + ["entry"] * 8  # checkpoints, then entries
    fields = {
        "size",
        "head_hash",
        "signed_at",
        "key_id",
        "signature",
        "version",
        "prev",
        "every",
        "interval_ms",
        "index_hash",
    }
    prev = ZEROS
    for line in rest[:3]:
        c = line["checkpoint"]
        assert set(c) == fields
        message = v2_message(
            c["size"],
            c["head_hash"],
            c["signed_at"],
            c["prev"],
            c["every"],
            c["interval_ms"],
            c["index_hash"],
        )
        assert c["prev"] == prev
        carried.verify(bytes.fromhex(c["signature"]), message)
        prev = hashlib.sha256(message).hexdigest()
    stored = {r["seq"]: r["event"] for r in _rows(written.database, "SELECT * FROM ledger_entries")}
    prev = ZEROS
    for seq, line in enumerate(rest[3:], start=1):
        e = line["entry"]
        assert set(e) == {"seq", "recorded_at", "prev_hash", "hash", "event"}
        assert (e["seq"], e["prev_hash"]) == (seq, prev)
        assert e["event"] == stored[seq]  # the stored text, as a string, verbatim
        assert e["hash"] == chain_hash(prev, seq, e["recorded_at"], e["event"])
        prev = e["hash"]
    assert prev == rest[2]["checkpoint"]["head_hash"]  # it ends at its last checkpoint


# ----------------------------------------------------------------------------------------------
# What the oracle writes, the ledger's verifier accepts

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))  # deterministic: Ed25519 is


def _bundle_from_the_readme(
    path: Path, *, tamper: str | None = None, key: Ed25519PrivateKey = KEY
) -> None:
    """A bundle written from the README's definitions alone: 6 entries, a v1 checkpoint at 2
    (signed before checkpoints chained), v2 checkpoints at 4 and 6 chained to it."""
    texts = [
        canonical(factories.seizure(grams=1000 + n, time="2026-01-05T10:00:00+05:00"))
        for n in range(5)
    ] + [canonical(factories.alert(subject="BT-1", time="2026-01-05T05:00:00Z"))]
    entries, prev = [], ZEROS
    for seq, text in enumerate(texts, start=1):
        at = f"2026-01-05T05:00:0{seq}.000000Z"
        digest = chain_hash(prev, seq, at, text)
        entries.append(
            {"seq": seq, "recorded_at": at, "prev_hash": prev, "hash": digest, "event": text}
        )
        prev = digest
    public = key.public_key()
    kid, signed_at = oracle_key_id(public), "2026-01-05T05:00:10.000000Z"
    v1 = v1_message(2, entries[1]["hash"], signed_at)
    checkpoints: list[dict[str, Any]] = [
        {
            "size": 2,
            "head_hash": entries[1]["hash"],
            "signed_at": signed_at,
            "key_id": kid,
            "signature": key.sign(v1).hex(),
        }
    ]
    before = v1
    for size in (4, 6):
        covered = entries[checkpoints[-1]["size"] : size]
        index = hashlib.sha256(
            "".join(index_text(json.loads(e["event"])) for e in covered).encode()
        ).hexdigest()
        prev = hashlib.sha256(before).hexdigest()
        message = v2_message(size, entries[size - 1]["hash"], signed_at, prev, 2, 60_000, index)
        checkpoints.append(
            {
                "size": size,
                "head_hash": entries[size - 1]["hash"],
                "signed_at": signed_at,
                "key_id": kid,
                "signature": key.sign(message).hex(),
                "version": 2,
                "prev": prev,
                "every": 2,
                "interval_ms": 60_000,
                "index_hash": index,
            }
        )
        before = message
    if tamper == "event":
        entries[2]["event"] = entries[2]["event"].replace("heroin", "flour")
    elif tamper == "chain-link":
        checkpoints[2]["prev"] = ZEROS
    header = {
        "format": "liaison-ledger-bundle/v2",
        "exported_at": "2026-01-05T05:00:11.000000Z",
        "public_key": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode(),
        "key_id": kid,
        "checkpoint_every": 2,
        "checkpoint_interval": 60,
    }
    lines = [header, *({"checkpoint": c} for c in checkpoints), *({"entry": e} for e in entries)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")


def _trusted(key: Ed25519PrivateKey = KEY) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def test_a_bundle_written_from_the_readme_verifies(tmp_path: Path) -> None:
    _bundle_from_the_readme(tmp_path / "b.jsonl")
    report = audit.verify_bundle(tmp_path / "b.jsonl", load_public_keys(_trusted()))
    assert report.problems == []
    assert (report.ok, report.count, report.checkpoints, report.origin_verified) == (
        True,
        6,
        3,
        True,
    )


@pytest.mark.parametrize("tamper", ["event", "chain-link"])
def test_a_bundle_from_the_readme_with_one_change_does_not(tmp_path: Path, tamper: str) -> None:
    """The positive vector above is not vacuous: a changed entry or a broken checkpoint
    link is refused (each signature is still valid)."""
    _bundle_from_the_readme(tmp_path / "b.jsonl", tamper=tamper)
    report = audit.verify_bundle(tmp_path / "b.jsonl", load_public_keys(_trusted()))
    assert report.ok is False
    assert report.first_bad_seq == {"event": 3, "chain-link": 6}[tamper]


def test_a_bundle_signed_by_another_key_is_not_trusted(tmp_path: Path) -> None:
    _bundle_from_the_readme(tmp_path / "b.jsonl", key=Ed25519PrivateKey.generate())
    report = audit.verify_bundle(tmp_path / "b.jsonl", load_public_keys(_trusted()))
    assert report.ok is False
