"""The access record on the command line: the auditor's replay and export are recorded before
they print, a data-protection officer's report finds a person's reads by document number, and
`liaison access verify` catches an edited row (issue 20)."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from tests.e2e.test_cli import run


@pytest.fixture
def demo_dir(tmp_path: Path) -> Path:
    """A data directory holding the demo's ledger (an alert naming TJ-PASSPORT-0000)."""
    result = run("demo", "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    return tmp_path


def _env(path: Path, **extra: str) -> dict[str, str]:
    return {"LIAISON_DATA_DIR": str(path), **extra}


def _report(path: Path) -> list[dict[str, object]]:
    found = run("access", "report", "--person", "tj passport 0000", "--json", env=_env(path))
    assert found.returncode == 0, found.stderr
    return [json.loads(line) for line in found.stdout.splitlines()]


def test_replay_and_export_are_recorded_and_the_report_finds_them(demo_dir: Path) -> None:
    before = _report(demo_dir)  # the demo read the inboxes through the API: recorded too
    replay = run("ledger", "replay", "--purpose", "audit 2026/3", env=_env(demo_dir))
    assert replay.returncode == 0, replay.stderr
    assert "TJ-PASSPORT-0000" in replay.stdout
    bundle = demo_dir / "bundle.jsonl"
    assert run("ledger", "export", str(bundle), env=_env(demo_dir)).returncode == 0
    reads = _report(demo_dir)[len(before) :]
    assert [r["record"]["channel"] for r in reads] == ["cli.replay", "cli.export"]  # type: ignore[index]
    first = reads[0]["record"]
    assert first["purpose"] == "audit 2026/3"  # type: ignore[index]
    assert str(first["principal"]).startswith("cli:")  # type: ignore[index]
    assert "TJ-PASSPORT-0000" not in json.dumps(reads)
    table = run("access", "report", "--person", "TJ-PASSPORT-0000", env=_env(demo_dir))
    assert "cli.replay" in table.stdout
    assert "audit 2026/3" in table.stdout


def test_a_required_purpose_is_one_line_and_exit_2(demo_dir: Path) -> None:
    refused = run("ledger", "replay", env=_env(demo_dir, LIAISON_ACCESS_PURPOSE="required"))
    assert refused.returncode == 2
    assert refused.stdout == ""  # nothing shown
    assert "--purpose" in refused.stderr
    assert "Traceback" not in refused.stderr
    bad = run("ledger", "replay", "--purpose", "x" * 201, env=_env(demo_dir))
    assert bad.returncode == 2
    assert "--purpose: one line of at most 200 characters" in bad.stderr


def test_verify_catches_an_edited_row(demo_dir: Path) -> None:
    assert run("ledger", "replay", "--purpose", "audit 1", env=_env(demo_dir)).returncode == 0
    ok = run("access", "verify", env=_env(demo_dir))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("OK: ")
    with closing(sqlite3.connect(demo_dir / "ledger.sqlite3")) as db:
        (last,) = db.execute("SELECT max(seq) FROM access_entries").fetchone()
        db.execute(
            "UPDATE access_entries SET record = replace(record, 'audit 1', 'routine') WHERE seq = ?",
            (last,),
        )
        db.commit()
    broken = run("access", "verify", env=_env(demo_dir))
    assert broken.returncode == 1
    assert f"BROKEN: access entry #{last}: hash does not match its content" in broken.stderr
