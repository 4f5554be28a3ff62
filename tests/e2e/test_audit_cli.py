"""An auditor's session: after the demo, replay, trail, stats, export and verify offline."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.ledger.chain import GENESIS, entry_hash
from services.ledger.checkpoints import Checkpoint, signed
from services.ledger.signing import Signer, checkpoint_message, public_pem
from tests.e2e.test_cli import run


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory holding the demo's ledger and signing key."""
    path = tmp_path_factory.mktemp("demo")
    result = run("demo", "--data-dir", str(path))
    assert result.returncode == 0, result.stderr
    return path


def _env(path: Path) -> dict[str, str]:
    return {"LIAISON_DATA_DIR": str(path)}


def test_verify_checks_chain_and_signed_checkpoints(demo_dir: Path) -> None:
    result = run("ledger", "verify", env=_env(demo_dir))
    assert result.returncode == 0
    assert result.stdout.startswith("OK 8 entries, 2 signed checkpoints verified")


def test_replay_filters_by_type_and_time(demo_dir: Path) -> None:
    lines = run(
        "ledger", "replay", "--type", "alert.delivered", env=_env(demo_dir)
    ).stdout.splitlines()
    entries = [json.loads(line) for line in lines]
    assert [e["event"]["data"]["recipient"] for e in entries] == [
        "BLO-FOTEHOBOD", "IMT-GULISTAN", "IMT-TASHKENT", "NIAC-UZ",
    ]  # fmt: skip
    assert set(entries[0]) == {"seq", "hash", "prev_hash", "recorded_at", "event"}
    future = run("ledger", "replay", "--since", "2999-01-01", env=_env(demo_dir))
    assert future.returncode == 0
    assert future.stdout == ""
    bad = run("ledger", "replay", "--since", "last tuesday", env=_env(demo_dir))
    assert bad.returncode == 2
    assert "--since" in bad.stderr


def test_trail_tells_the_alerts_story_in_order(demo_dir: Path) -> None:
    raised = json.loads(
        run("ledger", "replay", "--type", "alert.raised", env=_env(demo_dir)).stdout
    )
    story = run("ledger", "trail", raised["event"]["id"], env=_env(demo_dir)).stdout
    steps = [line.split("Z  ", 1)[1] for line in story.splitlines() if line.startswith("#")]
    assert steps[0].startswith("raised by BLO-OYBEK (urgent)")
    assert "delivered to BLO-FOTEHOBOD (counterpart; non-nominal view)" in steps
    assert any(s.startswith("acknowledged by IMT-GULISTAN") for s in steps)
    assert steps[-1].startswith("closed by BLO-OYBEK")
    unknown = run("ledger", "trail", "no-such-alert", env=_env(demo_dir))
    assert unknown.returncode == 2


def test_stats_json(demo_dir: Path) -> None:
    rows = json.loads(run("ledger", "stats", "--json", env=_env(demo_dir)).stdout)
    assert len(rows) == 1
    row = rows[0]
    assert {k: row[k] for k in ("unit", "substance", "measure", "quantity", "seizures")} == {
        "unit": "IMT-GULISTAN", "substance": "heroin", "measure": "kg", "quantity": 20.032, "seizures": 1,
    }  # fmt: skip


def _exported(demo_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A bundle of the demo's ledger, and the public key its operators hand the auditor."""
    bundle, key = tmp_path / "ledger.jsonl", tmp_path / "ledger-key.pem"
    assert run("ledger", "export", str(bundle), env=_env(demo_dir)).returncode == 0
    key.write_text(run("ledger", "public-key", env=_env(demo_dir)).stdout)
    return bundle, key


def test_bundle_verifies_offline_and_fails_when_altered(demo_dir: Path, tmp_path: Path) -> None:
    bundle, key = _exported(demo_dir, tmp_path)
    offline = run("ledger", "verify", "--bundle", str(bundle), "--public-key", str(key))
    assert (
        offline.returncode == 0
    )  # no data directory at all, and the auditor's own copy of the key
    assert offline.stdout.startswith("OK 8 entries")
    pinned = run(
        "ledger", "verify", "--bundle", str(bundle), env={"LIAISON_TRUSTED_KEYS": str(key)}
    )
    assert pinned.returncode == 0
    edited = tmp_path / "edited.jsonl"
    edited.write_text(bundle.read_text().replace("20.032", "2.032"))
    result = run("ledger", "verify", "--bundle", str(edited), "--public-key", str(key))
    assert result.returncode == 1
    assert "BROKEN at seq 7" in result.stdout
    truncated = tmp_path / "truncated.jsonl"
    truncated.write_text("".join(bundle.read_text().splitlines(keepends=True)[:-2]))
    result = run("ledger", "verify", "--bundle", str(truncated), "--public-key", str(key))
    assert result.returncode == 1
    assert "truncated" in result.stdout


def test_a_bundle_verified_without_a_trusted_key_is_not_ok(demo_dir: Path, tmp_path: Path) -> None:
    bundle, _key = _exported(demo_dir, tmp_path)
    result = run("ledger", "verify", "--bundle", str(bundle))
    assert result.returncode == 3
    assert result.stdout.startswith("UNVERIFIED ORIGIN: 8 entries")
    assert "--public-key" in result.stdout


def _forge(bundle: Path, forged: Path) -> None:
    """Issue 12.4: an entry edited, every hash recomputed, the checkpoints re-signed with a key of
    the forger's own, which goes into the header."""
    signer = Signer(Ed25519PrivateKey.generate())
    lines = [json.loads(line) for line in bundle.read_text().splitlines()]
    header, rest = lines[0], lines[1:]
    entries = [line["entry"] for line in rest if "entry" in line]
    prev, heads = GENESIS, {}
    for entry in entries:
        entry["event"] = entry["event"].replace("20.032", "2.032")
        entry["prev_hash"], entry["hash"] = (
            prev,
            entry_hash(prev, entry["seq"], entry["recorded_at"], entry["event"]),
        )
        prev = heads[entry["seq"]] = entry["hash"]
    resigned, before = [], None
    for line in rest:
        if "checkpoint" in line:
            old = Checkpoint.from_dict(line["checkpoint"])
            head, at = heads[old.size], old.signed_at
            if old.policy is None:  # a version 1 checkpoint (an older export)
                message = checkpoint_message(old.size, head, at)
                before = Checkpoint(old.size, head, at, signer.key_id, signer.sign(message))
            else:
                index = old.index_hash or ""
                before = signed(
                    signer.sign, signer.key_id, (old.size, head), at, before, old.policy, index
                )
            resigned.append({"checkpoint": before.to_dict()})
    header |= {"public_key": public_pem(signer.public_key), "key_id": signer.key_id}
    out = [header, *resigned, *({"entry": e} for e in entries)]
    forged.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in out))


def test_a_bundle_re_signed_with_another_key_does_not_verify(
    demo_dir: Path, tmp_path: Path
) -> None:
    bundle, key = _exported(demo_dir, tmp_path)
    forged = tmp_path / "forged.jsonl"
    _forge(bundle, forged)
    alone = run("ledger", "verify", "--bundle", str(forged))  # consistent, signed by its own key
    assert alone.returncode == 3
    assert "UNVERIFIED ORIGIN" in alone.stdout
    assert "OK" not in alone.stdout
    trusted = run("ledger", "verify", "--bundle", str(forged), "--public-key", str(key))
    assert trusted.returncode == 1
    assert "signature does not verify with a trusted key" in trusted.stdout


def test_a_bundle_without_its_checkpoint_lines_does_not_verify(
    demo_dir: Path, tmp_path: Path
) -> None:
    """Issue 13.2: a real bundle with its checkpoint lines removed."""
    bundle, key = _exported(demo_dir, tmp_path)
    stripped = tmp_path / "stripped.jsonl"
    stripped.write_text(
        "".join(
            line
            for line in bundle.read_text().splitlines(keepends=True)
            if '"checkpoint"' not in line
        )
    )
    result = run("ledger", "verify", "--bundle", str(stripped), "--public-key", str(key))
    assert result.returncode == 1
    assert "BROKEN at seq 1" in result.stdout
    assert "does not end at a signed checkpoint" in result.stdout


def test_bundle_checked_against_the_auditors_own_copy_of_the_key(
    demo_dir: Path, tmp_path: Path
) -> None:
    bundle = tmp_path / "ledger.jsonl"
    run("ledger", "export", str(bundle), env=_env(demo_dir))
    other = tmp_path / "other"
    other.mkdir()
    run("demo", "--data-dir", str(other))
    foreign_key = tmp_path / "foreign.pem"
    foreign_key.write_text(run("ledger", "public-key", env=_env(other)).stdout)
    result = run("ledger", "verify", "--bundle", str(bundle), "--public-key", str(foreign_key))
    assert result.returncode == 1
    assert "signature" in result.stdout


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (
            "UPDATE ledger_entries SET event = replace(event, '20.032', '2.032') WHERE seq = 7",
            "BROKEN at seq 7",
        ),
        ("DELETE FROM ledger_entries WHERE seq = 3", "BROKEN at seq 3"),
        ("DELETE FROM ledger_entries WHERE seq = 8", "truncated"),
        ("DELETE FROM ledger_checkpoints", "BROKEN at seq"),  # the ledger's record names it
    ],
)
def test_verify_names_what_broke_in_the_database(
    tmp_path: Path, tamper: str, expected: str
) -> None:
    assert run("demo", "--data-dir", str(tmp_path)).returncode == 0
    with closing(sqlite3.connect(tmp_path / "ledger.sqlite3")) as db, db:
        db.execute(tamper)
    result = run("ledger", "verify", env=_env(tmp_path))
    assert result.returncode == 1
    assert expected in result.stdout


def test_editing_a_seizures_indexed_columns_is_caught(tmp_path: Path) -> None:
    """Issue 12.3: only the type and time columns change, never the hashed text."""
    assert run("demo", "--data-dir", str(tmp_path)).returncode == 0
    with closing(sqlite3.connect(tmp_path / "ledger.sqlite3")) as db, db:
        [seq] = db.execute(
            "SELECT seq FROM ledger_entries WHERE type = 'seizure.reported'"
        ).fetchone()
        db.execute(
            "UPDATE ledger_entries SET type = 'alert.delivered',"
            " event_time = '2001-01-01T00:00:00.000000Z' WHERE seq = ?",
            (seq,),
        )
    hidden = run("ledger", "replay", "--type", "seizure.reported", env=_env(tmp_path))
    assert hidden.stdout == ""  # what the edit achieves for readers...
    result = run("ledger", "verify", env=_env(tmp_path))
    assert result.returncode == 1  # ...and verify says so, naming the entry and the column
    assert f"BROKEN at seq {seq}" in result.stdout
    assert "type" in result.stdout


def test_a_ledger_rewritten_without_its_checkpoints_is_neither_verified_nor_signed(
    tmp_path: Path,
) -> None:
    """Issue 13.2: every checkpoint deleted, entry 1 edited and the chain recomputed."""
    assert run("demo", "--data-dir", str(tmp_path)).returncode == 0
    with closing(sqlite3.connect(tmp_path / "ledger.sqlite3")) as db, db:
        db.execute("DELETE FROM ledger_checkpoints")
        prev = GENESIS
        rows = db.execute(
            "SELECT seq, recorded_at, event FROM ledger_entries ORDER BY seq"
        ).fetchall()
        for seq, recorded_at, event in rows:
            event = event.replace("urgent", "routine") if seq == 1 else event
            digest = entry_hash(prev, seq, recorded_at, event)
            db.execute(
                "UPDATE ledger_entries SET event = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                (event, prev, digest, seq),
            )
            prev = digest
    result = run("ledger", "verify", env=_env(tmp_path))
    assert result.returncode == 1
    assert "BROKEN at seq" in result.stdout
    exported = run("ledger", "export", str(tmp_path / "bundle.jsonl"), env=_env(tmp_path))
    assert exported.returncode == 1  # the signer refuses to sign the forged head
    assert "checkpoints were deleted" in exported.stderr
    with closing(sqlite3.connect(tmp_path / "ledger.sqlite3")) as db:
        assert db.execute("SELECT count(*) FROM ledger_checkpoints").fetchone() == (0,)


@pytest.mark.parametrize(
    ("tamper", "command"),
    [
        ("UPDATE ledger_entries SET event = 'gone' WHERE type = 'seizure.reported'", "stats"),
        ("UPDATE ledger_entries SET event = '{}' WHERE type = 'alert.raised'", "trail"),
    ],
)
def test_reading_an_altered_row_is_a_clear_error(tmp_path: Path, tamper: str, command: str) -> None:
    assert run("demo", "--data-dir", str(tmp_path)).returncode == 0
    with closing(sqlite3.connect(tmp_path / "ledger.sqlite3")) as db, db:
        [alert_id] = db.execute(
            "SELECT event_id FROM ledger_entries WHERE type = 'alert.raised'"
        ).fetchone()
        db.execute(tamper)
    args = ("ledger", command) if command == "stats" else ("ledger", command, alert_id)
    result = run(*args, env=_env(tmp_path))
    assert result.returncode == 1
    assert "the database was altered" in result.stderr
    assert "Traceback" not in result.stderr
