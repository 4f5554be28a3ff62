"""Publisher signatures end to end on the real server and SQLite (issue 19): ingest verifies
before it accepts, the ledger keeps the signature and the key registry, a bundle verifies
offline, a recipient abroad verifies its non-nominal copy, a revoked key."""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from redis.asyncio import Redis

from schemas.events import CloudEvent
from schemas.topology import default_topology
from services.bootstrap import Runtime
from services.core import dsse, streams
from services.core.alert_register import AlertRegister
from services.core.auth import token_digest
from services.core.bus import RedisPublisher, ensure_groups
from services.core.config import FileConfig, Principal, PublisherKey, Role, Signatures
from services.core.keyring import Registry
from services.core.settings import Settings
from services.entrypoints.http import create_app
from services.entrypoints.keys_cli import sign_event
from services.ingest import dlq
from services.ingest.adapters import ADAPTERS
from services.ingest.importer import import_file
from services.ledger import audit, provenance
from services.ledger.signing import public_pem
from tests import factories
from tests.e2e.test_cli import run
from tests.integration.conftest import TOKENS, auth, eventually, principals_config

K1, K0, K2, STRANGER = (Ed25519PrivateKey.generate() for _ in range(4))
PAST = datetime(2025, 1, 1, tzinfo=UTC)


def _config(revoked_at: datetime | None = None) -> FileConfig:
    """uz-customs requires signatures: k1 valid, k0 revoked, k2 not yet valid; uz-mia signs
    optionally with no key."""
    keys = (
        PublisherKey(id="k1", public_key=dsse.raw_b64(K1.public_key()), revoked_at=revoked_at),
        PublisherKey(id="k0", public_key=dsse.raw_b64(K0.public_key()), revoked_at=PAST),
        PublisherKey(
            id="k2",
            public_key=dsse.raw_b64(K2.public_key()),
            not_before=datetime.now(UTC) + timedelta(days=30),
        ),
    )
    others = tuple(p for p in principals_config().principals if p.name != "uz-customs")
    customs = Principal(
        name="uz-customs",
        role=Role.PUBLISHER,
        token_sha256=token_digest(TOKENS["customs"]),
        units=("BLO-OYBEK", "BLO-AYRITOM"),
        signatures=Signatures.REQUIRED,
        keys=keys,
    )
    return FileConfig(principals=(customs, *others))


def _settings(redis_url: str, data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, redis_url=redis_url, database_url=None, config=None)


@pytest.fixture
async def signed_runtime(redis_url: str, data_dir: Path) -> AsyncIterator[Runtime]:
    async with Runtime(_settings(redis_url, data_dir), _config()) as running:
        yield running


@pytest.fixture
async def client(signed_runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(signed_runtime.deps()))
    async with httpx.AsyncClient(transport=transport, base_url="http://liaison") as http:
        yield http


def _signed(
    event: dict[str, Any], key: Ed25519PrivateKey = K1, keyid: str = "uz-customs/k1"
) -> dict[str, Any]:
    return sign_event(event, key, keyid)


async def _recorded(runtime: Runtime, event_id: str) -> None:
    async def there() -> bool:
        return any([e async for e in runtime.ledger.entries() if e.event["id"] == event_id])

    await eventually(there)


async def test_a_signed_alert_is_accepted_and_verifies_offline_from_the_bundle(
    signed_runtime: Runtime, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    event = _signed(factories.alert(piireleasableto="UZ"))
    response = await client.post("/v1/events", json=event, headers=auth("customs"))
    assert response.status_code == 202, response.text
    await _recorded(signed_runtime, event["id"])
    stored = [e async for e in signed_runtime.ledger.entries() if e.event["id"] == event["id"]]
    assert stored[0].event["dssematerial"] == event["dssematerial"]  # kept with the event
    assert stored[0].event["piidisclosures"] == event["piidisclosures"]
    bundle = tmp_path / "bundle.jsonl"
    with bundle.open("w", encoding="utf-8") as out:
        await audit.export_bundle(signed_runtime.ledger, out)
    report = provenance.check_bundle(bundle)
    assert report.ok, report.problem
    assert (report.signed, report.keys) == (1, {"uz-customs/k1"})
    assert audit.verify_bundle(bundle).ok  # the chain holds with the registry's entries in it
    types = [
        json.loads(line).get("entry", {}).get("event", "")
        for line in bundle.read_text(encoding="utf-8").splitlines()
    ]
    registered = [json.loads(t)["data"]["keyid"] for t in types if '"key.registered"' in t]
    assert {"uz-customs/k1", "uz-customs/k0", "uz-customs/k2"} <= set(registered)
    assert any(k.startswith("ledger/") for k in registered)  # the checkpoint key is listed too
    assert any('"key.revoked"' in t and "uz-customs/k0" in t for t in types)
    verdict = _verify_cli(bundle, signed_runtime, tmp_path)
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr
    assert "signatures: 1 events verified against their publisher's key (uz-customs/k1)" in (
        verdict.stdout
    )


def _verify_cli(bundle: Path, runtime: Runtime, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``liaison ledger verify --bundle`` as an auditor runs it, with the ledger's public key."""
    assert runtime.ledger.signer is not None
    pem = tmp_path / "ledger.pub.pem"
    pem.write_text(public_pem(runtime.ledger.signer.public_key))
    return run("ledger", "verify", "--bundle", str(bundle), "--public-key", str(pem))


async def test_the_bundle_names_an_altered_signed_event(
    signed_runtime: Runtime, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    event = _signed(factories.alert())
    assert (await client.post("/v1/events", json=event, headers=auth("customs"))).status_code == 202
    await _recorded(signed_runtime, event["id"])
    bundle = tmp_path / "bundle.jsonl"
    with bundle.open("w", encoding="utf-8") as out:
        await audit.export_bundle(signed_runtime.ledger, out)
    lines = bundle.read_text(encoding="utf-8").splitlines()
    forged = [line.replace("KAMAZ truck", "MAN truck") for line in lines]
    bundle.write_text("\n".join(forged) + "\n", encoding="utf-8")
    report = provenance.check_bundle(bundle)
    assert report.first_bad_seq is not None
    assert "bad signature" in (report.problem or "")


@pytest.mark.parametrize(
    ("make", "field", "reason"),
    [
        (lambda e: e, "dssematerial", "signature required: uz-customs signs every event"),
        (lambda e: _signed(e, STRANGER, "uz-customs/k9"), "dssematerial", "unknown key uz-customs/k9"),
        (lambda e: _signed(e, STRANGER, "uz-mia/k1"), "dssematerial", "unknown key uz-mia/k1"),
        (lambda e: _signed(e, K0, "uz-customs/k0"), "dssematerial", "was revoked at 2025-01-01"),
        (lambda e: _signed(e, K2, "uz-customs/k2"), "dssematerial", "is valid only from"),
        (lambda e: _signed(e, STRANGER), "dssematerial", "bad signature: not made by key"),
        (lambda e: {**_signed(e), "tlp": "clear"}, "tlp", "bad signature"),
        (lambda e: _signed(e) | {"data": {**_signed(e)["data"], "severity": "flash"}}, "data", "bad signature"),
    ],
    ids=["unsigned", "unknown-key", "other-publishers-key", "revoked", "not-yet-valid", "bad-signature", "tlp-changed", "data-changed"],
)  # fmt: skip
async def test_each_refusal_is_a_located_422_and_publishes_nothing(
    client: httpx.AsyncClient, signed_runtime: Runtime, make: Any, field: str, reason: str
) -> None:
    good, bad = _signed(factories.alert()), make(factories.alert())
    response = await client.post("/v1/events", json=[good, bad], headers=auth("customs"))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    [error] = response.json()["errors"]
    assert (error["index"], error["field"]) == (1, field)
    assert reason in error["message"]
    assert await signed_runtime.redis.xlen(streams.ALERTS) == 0  # the batch is all or nothing


async def test_an_unsigned_or_forged_ingress_entry_is_dead_lettered_with_its_reason(
    signed_runtime: Runtime,
) -> None:
    redis: Redis = signed_runtime.redis
    ingress = streams.ingress_stream("uz-customs")
    unsigned, forged, good = (
        factories.alert(),
        _signed(factories.alert(), STRANGER),
        _signed(factories.alert()),
    )
    for event in (unsigned, forged, good):
        await redis.xadd(ingress, {streams.EVENT_FIELD: json.dumps(event)})

    async def settled() -> bool:
        return await dlq.count(redis) == 2 and await redis.xlen(streams.ALERTS) == 1

    await eventually(settled)
    reasons = sorted(letter.reason for letter in await dlq.list_dead_letters(redis))
    assert reasons == [
        "invalid event: dssematerial: bad signature: not made by key uz-customs/k1",
        "invalid event: dssematerial: signature required: uz-customs signs every event it sends",
    ]


async def test_a_non_nominal_recipient_s_copy_verifies(
    signed_runtime: Runtime, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """BLO Fotehobod (TJ) receives the alert without persons; its copy verifies against the
    key registry the ledger's bundle carries."""
    event = _signed(factories.alert())  # releasable to UZ,TJ; persons to none abroad
    assert (await client.post("/v1/events", json=event, headers=auth("customs"))).status_code == 202

    async def delivered() -> list[dict[str, Any]]:
        page = await client.get("/v1/units/BLO-FOTEHOBOD/alerts", headers=auth("auditor"))
        return list(page.json()["alerts"])

    async def arrived() -> bool:
        return bool(await delivered())

    await eventually(arrived)
    [delivery] = await delivered()
    copy = delivery["event"]
    assert "persons" not in copy["data"]
    assert "piidisclosures" not in copy
    assert "Example Driver" not in json.dumps(copy)
    await _recorded(signed_runtime, event["id"])
    bundle = tmp_path / "bundle.jsonl"
    with bundle.open("w", encoding="utf-8") as out:
        await audit.export_bundle(signed_runtime.ledger, out)
    keys = [
        json.loads(json.loads(line)["entry"]["event"])
        for line in bundle.read_text(encoding="utf-8").splitlines()
        if '"entry"' in line
    ]
    registry = Registry.of_entries(e for e in keys if e["type"].startswith("key."))
    assert registry.check(copy, datetime.now(UTC)) == "uz-customs/k1"
    CloudEvent.model_validate(copy)  # and it is a valid event of the contract


async def test_a_key_revoked_at_t_refuses_what_comes_after_and_keeps_what_came_before(
    redis_url: str, data_dir: Path
) -> None:
    before = _signed(factories.alert())
    async with Runtime(_settings(redis_url, data_dir), _config()) as runtime:
        transport = httpx.ASGITransport(app=create_app(runtime.deps()))
        async with httpx.AsyncClient(transport=transport, base_url="http://liaison") as http:
            assert (
                await http.post("/v1/events", json=before, headers=auth("customs"))
            ).status_code == 202
            await _recorded(runtime, before["id"])
    revoked_at = datetime.now(UTC)
    after = _signed(factories.alert())
    async with Runtime(_settings(redis_url, data_dir), _config(revoked_at)) as runtime:
        transport = httpx.ASGITransport(app=create_app(runtime.deps()))
        async with httpx.AsyncClient(transport=transport, base_url="http://liaison") as http:
            refused = await http.post("/v1/events", json=after, headers=auth("customs"))
        assert refused.status_code == 422
        assert "uz-customs/k1 was revoked at" in refused.json()["errors"][0]["message"]
        report = await provenance.check_ledger(runtime.ledger)
        assert report.ok  # the event signed before T still verifies
        assert report.signed == 1
        # an operator who slips in an event signed after T is caught by its seq
        [seq] = (await runtime.ledger.append([CloudEvent.model_validate(after)])).appended
        report = await provenance.check_ledger(runtime.ledger)
        assert report.first_bad_seq == seq
        assert "was revoked at" in (report.problem or "")
        bundle = data_dir / "bundle.jsonl"
        with bundle.open("w", encoding="utf-8") as out:
            await audit.export_bundle(runtime.ledger, out)
        verdict = _verify_cli(bundle, runtime, data_dir)
        assert (
            verdict.returncode == 1
        )  # the chain holds: the operator signed it; the agency did not
        assert (
            f"BROKEN at seq {seq}: publisher signature: dssematerial: key uz-customs/k1 was revoked at"
            in verdict.stdout
        )


async def test_an_import_row_for_a_unit_whose_publisher_signs_is_rejected_and_dead_lettered(
    redis: Redis,
) -> None:
    """An agency file carries no signatures: a row for uz-customs' units is refused with the
    reason (and kept on the dead-letter stream when asked); other units' rows go in."""
    await ensure_groups(redis)
    data = (
        b"reg_no;date;post;substance;quantity;unit\n"
        b"1;14.03.2024;Oybek;heroin;1;kg\n"  # BLO-OYBEK: uz-customs requires signatures
        b"2;14.03.2024;Gulistan;heroin;1;kg\n"
    )
    summary = await import_file(
        ADAPTERS["customs-csv"], io.BytesIO(data), default_topology(), RedisPublisher(redis),
        owners=AlertRegister(redis), dead_letters=redis, label="register.csv",
        registry=Registry.of_principals(_config().principals),
    )  # fmt: skip
    assert (summary.published, summary.rejected_rows) == (1, 1)
    [error] = summary.errors
    assert (error.row, error.field) == (2, "(row)")
    assert "signature required: uz-customs signs every event for BLO-OYBEK" in error.reason
    [letter] = await dlq.list_dead_letters(redis)
    assert "signature required" in letter.reason
