"""Witnesses (issue 19): an operator who rewrites, drops or forks the ledger after a witness
cosigned — and re-signs the whole chain with the operator's own key — is caught by the
witness's cosignature, on SQLite and PostgreSQL; and the witnesses' endpoints."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text
from typer.testing import CliRunner

from schemas.events import CloudEvent
from services.bootstrap import Runtime
from services.core.settings import DEFAULT_LEDGER_ORIGIN
from services.entrypoints.http import create_app
from services.entrypoints.serve import ApiServer
from services.ledger import tables, witness, witness_cli, witness_store
from services.ledger.chain import GENESIS, entry_hash
from services.ledger.checkpoints import signed
from services.ledger.signing import public_pem, record_path
from services.ledger.store import CheckpointPolicy, SqlLedger
from services.ledger.witness import Cosignature, WitnessKey
from tests import factories
from tests.integration.conftest import TOKENS, WITNESS_SEED, auth
from tests.integration.test_ledger_store import LedgerFactory, make_ledger, postgres_server

__all__ = ["make_ledger", "postgres_server"]  # fixtures, imported so pytest finds them here

ORIGIN = "exchange.niac.uz/ledger"
NAME = "niac.uz/witness"
POLICY = CheckpointPolicy(every=3, interval=3600)


def _events(*grams: int) -> list[CloudEvent]:
    return [CloudEvent.model_validate(factories.seizure(grams=g)) for g in grams]


GENUINE = (1000, 2000, 3000, 4000, 5000, 6000, 7000)


def _witness() -> tuple[Ed25519PrivateKey, dict[str, WitnessKey]]:
    private = Ed25519PrivateKey.generate()
    return private, {NAME: WitnessKey(NAME, private.public_key())}


async def _cosigned(ledger: SqlLedger, private: Ed25519PrivateKey) -> Cosignature:
    """The witness cosigns the ledger's latest checkpoint; the ledger stores it."""
    checkpoint = await witness_store.latest_checkpoint(ledger.engine)
    assert checkpoint is not None
    made = witness.cosign(private, NAME, ORIGIN, (checkpoint.size, checkpoint.head_hash), 1000)
    keys = {NAME: WitnessKey(NAME, private.public_key())}
    [(kept, new)] = await witness_store.accept(ledger.engine, ORIGIN, made.note(ORIGIN), keys)
    assert (kept, new) == (made, True)
    return made


async def _resigned_by_the_operator(
    make: LedgerFactory, ledger: SqlLedger, events: list[CloudEvent], tmp_path: Path
) -> SqlLedger:
    """The operator, who holds the signing key, empties the tables (cosignatures kept) and
    appends another history, signed afresh with the same key: a consistent, signed ledger."""
    async with ledger.engine.begin() as conn:
        await conn.execute(text("DELETE FROM ledger_entries"))
        await conn.execute(text("DELETE FROM ledger_checkpoints"))
    record_path(tmp_path / "key.pem").unlink()  # and the signer's record beside the key
    forged = make(POLICY)
    await forged.append(events)
    await forged.checkpoint_if_due(force=True)
    return forged


@pytest.mark.parametrize(
    ("history", "caught"),
    [
        ((1000, 2000, 3000, 4000, 5000, 6000, 7777), (7, "rewritten or forked")),  # edited
        ((1000, 2000, 3000, 4000), (5, "cosigned 7 entries, the ledger has 4")),  # dropped
        ((1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000), (7, "rewritten or forked")),  # forked
    ],
    ids=["edited", "dropped", "forked"],
)
async def test_an_operator_who_re_signs_another_history_is_caught_by_the_witness(
    make_ledger: LedgerFactory,
    tmp_path: Path,
    history: tuple[int, ...],
    caught: tuple[int, str],
) -> None:
    ledger = make_ledger(POLICY)
    await ledger.create_schema()
    await ledger.append(_events(*GENUINE))
    await ledger.checkpoint_if_due(force=True)
    private, keys = _witness()
    kept = await _cosigned(ledger, private)
    seen = await witness_store.witnessed(ledger.engine, keys, ORIGIN, 7)
    assert (seen.upto, seen.problems) == ({NAME: kept}, [])

    # "forked": the same count of entries at 7 would verify only with the same history, so
    # the fork inserts one before the last (its entry 7 differs)
    events = _events(*history)
    if len(history) == 8:
        events = _events(*GENUINE[:6], 6500, 7000)
    forged = await _resigned_by_the_operator(make_ledger, ledger, events, tmp_path)

    report = await forged.verify()
    assert report.ok, report.problems  # the operator's key alone vouches for the forgery
    assert report.origin_verified
    # the witness's cosignature, kept in the database, no longer matches
    seen = await witness_store.witnessed(forged.engine, keys, ORIGIN, report.count)
    assert seen.upto == {}
    assert [(seq, caught[1] in problem) for seq, problem in seen.problems] == [(caught[0], True)]
    # dropped as well: no cosignature is left, and the witness's own copy still catches it
    async with forged.engine.begin() as conn:
        await conn.execute(text("DELETE FROM ledger_cosignatures"))
    seen = await witness_store.witnessed(forged.engine, keys, ORIGIN, report.count)
    assert (seen.upto, seen.problems) == ({}, [])  # UNWITNESSED: the witness is missing
    seen = await witness_store.witnessed(forged.engine, keys, ORIGIN, report.count, [kept])
    assert [seq for seq, _ in seen.problems] == [caught[0]]


async def test_the_ledger_keeps_only_cosignatures_of_its_own_heads_by_the_witness_s_key(
    make_ledger: LedgerFactory,
) -> None:
    ledger = make_ledger(POLICY)
    await ledger.create_schema()
    await ledger.append(_events(1000, 2000, 3000))
    private, keys = _witness()
    kept = await _cosigned(ledger, private)
    assert await witness_store.accept(ledger.engine, ORIGIN, kept.note(ORIGIN), keys) == [
        (kept, False)
    ]  # idempotent
    other = witness.cosign(private, NAME, ORIGIN, (3, "ab" * 32), 1000)
    with pytest.raises(witness_store.Mismatch, match="does not have at 3 entries"):
        await witness_store.accept(ledger.engine, ORIGIN, other.note(ORIGIN), keys)
    impostor = witness.cosign(Ed25519PrivateKey.generate(), NAME, ORIGIN, (3, kept.head_hash), 1)
    with pytest.raises(ValueError, match="does not verify with its key"):
        await witness_store.accept(ledger.engine, ORIGIN, impostor.note(ORIGIN), keys)
    with pytest.raises(ValueError, match="is about ledger 'elsewhere'"):
        await witness_store.accept(ledger.engine, ORIGIN, kept.note("elsewhere"), keys)
    assert await witness_store.load(ledger.engine) == [kept]


async def test_a_witness_reads_the_checkpoint_and_hands_in_its_cosignature(
    runtime: Runtime,
) -> None:
    transport = httpx.ASGITransport(app=create_app(runtime.deps()))
    private = Ed25519PrivateKey.from_private_bytes(WITNESS_SEED)
    async with httpx.AsyncClient(transport=transport, base_url="http://liaison") as api:
        missing = await api.get("/v1/ledger/checkpoint", headers=auth("witness"))
        assert missing.status_code == 404
        await runtime.ledger.append(_events(1000, 2000))
        await runtime.ledger.checkpoint_if_due(force=True)
        latest = (await api.get("/v1/ledger/checkpoint", headers=auth("witness"))).json()
        assert latest["origin"] == DEFAULT_LEDGER_ORIGIN
        size, head = latest["checkpoint"]["size"], latest["checkpoint"]["head_hash"]
        assert latest["note"] == witness.note_body(DEFAULT_LEDGER_ORIGIN, size, head).decode()
        page = (await api.get("/v1/ledger/events", headers=auth("witness"))).json()
        assert page["events"][-1]["hash"] == head  # what the witness recomputes

        note = witness.cosign(private, "niac.uz/witness", DEFAULT_LEDGER_ORIGIN, (size, head), 5)
        body = {"note": note.note(DEFAULT_LEDGER_ORIGIN)}
        first = await api.post("/v1/ledger/cosignatures", json=body, headers=auth("witness"))
        assert (first.status_code, first.json()) == (
            201,
            {"witness": "niac.uz/witness", "size": size, "new": True},
        )
        again = await api.post("/v1/ledger/cosignatures", json=body, headers=auth("witness"))
        assert again.status_code == 200
        forged = witness.cosign(
            Ed25519PrivateKey.generate(), "niac.uz/witness", DEFAULT_LEDGER_ORIGIN, (size, head), 5
        )
        refused = await api.post(
            "/v1/ledger/cosignatures",
            json={"note": forged.note(DEFAULT_LEDGER_ORIGIN)},
            headers=auth("witness"),
        )
        assert refused.status_code == 422
        assert "does not verify" in refused.json()["detail"]
        other = witness.cosign(
            private, "niac.uz/witness", DEFAULT_LEDGER_ORIGIN, (size, "0" * 64), 5
        )
        conflict = await api.post(
            "/v1/ledger/cosignatures",
            json={"note": other.note(DEFAULT_LEDGER_ORIGIN)},
            headers=auth("witness"),
        )
        assert conflict.status_code == 409
        by_auditor = await api.post("/v1/ledger/cosignatures", json=body, headers=auth("auditor"))
        assert by_auditor.status_code == 403
    assert [c.size for c in await witness_store.load(runtime.ledger.engine)] == [size]


async def test_liaison_witness_cosign_over_http_checks_the_chain_then_hands_in(
    runtime: Runtime, tmp_path: Path
) -> None:
    """`liaison witness cosign --url`: against a real server, twice (the second recomputes the
    chain from the first's head only); then the operator rewrites and re-signs: FORK."""
    runner = CliRunner()
    key = tmp_path / "witness.pem"
    key.write_bytes(
        Ed25519PrivateKey.from_private_bytes(WITNESS_SEED).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ledger_key = tmp_path / "ledger.pem"
    assert runtime.ledger.signer is not None
    ledger_key.write_text(public_pem(runtime.ledger.signer.public_key))
    token = tmp_path / "token"
    token.write_text(TOKENS["witness"] + "\n")
    state = tmp_path / "state.json"
    server = ApiServer(create_app(runtime.deps()), "127.0.0.1", 0)
    url = await server.start()
    args = [
        "cosign", "--url", url, "--token-file", str(token), "--key", str(key),
        "--name", "niac.uz/witness", "--ledger-key", str(ledger_key), "--state", str(state),
    ]  # fmt: skip
    try:
        await runtime.ledger.append(_events(1000, 2000, 3000))
        await runtime.ledger.checkpoint_if_due(force=True)
        first = await asyncio.to_thread(runner.invoke, witness_cli.app, args)
        assert first.exit_code == 0, first.output
        await runtime.ledger.append(_events(4000, 5000))
        await runtime.ledger.checkpoint_if_due(force=True)
        second = await asyncio.to_thread(runner.invoke, witness_cli.app, args)
        assert second.exit_code == 0, second.output
        assert json.loads(state.read_text())[DEFAULT_LEDGER_ORIGIN]["size"] == 5
        assert [c.size for c in await witness_store.load(runtime.ledger.engine)] == [3, 5]

        # the operator edits entry 2 and re-chains; checkpoints re-signed with its own key
        checkpoints, signer = await runtime.ledger.checkpoints(), runtime.ledger.signer
        async with runtime.ledger.engine.begin() as conn:
            query = text("SELECT seq, recorded_at, event FROM ledger_entries ORDER BY seq")
            prev, heads = GENESIS, {}
            for seq, recorded_at, event in (await conn.execute(query)).all():
                forged = event.replace('"quantity":2.0', '"quantity":0.2')
                digest = entry_hash(prev, seq, recorded_at, forged)
                update = (
                    "UPDATE ledger_entries SET event = :e, prev_hash = :p, hash = :h WHERE seq = :s"
                )
                await conn.execute(text(update), {"e": forged, "p": prev, "h": digest, "s": seq})
                prev = heads[seq] = digest
            await conn.execute(text("DELETE FROM ledger_checkpoints"))
            before = None
            for old in checkpoints:
                assert old.policy is not None
                before = signed(
                    signer.sign, signer.key_id, (old.size, heads[old.size]), old.signed_at,
                    before, old.policy, old.index_hash or "",
                )  # fmt: skip
                await conn.execute(tables.checkpoints.insert(), [before.columns()])
        assert signer.record_path is not None
        signer.record_path.unlink()  # the signer's record too: the operator has the key's host
        assert (await runtime.ledger.verify()).ok  # the operator's key alone vouches for it
        forked = await asyncio.to_thread(runner.invoke, witness_cli.app, args)
        assert forked.exit_code == 1
        assert "FORK: the chain from the head you cosigned does not reach" in forked.output
        assert json.loads(state.read_text())[DEFAULT_LEDGER_ORIGIN]["size"] == 5
    finally:
        await server.stop()
