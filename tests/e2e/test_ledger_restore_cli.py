"""``liaison ledger restore BUNDLE`` as an operator runs it after losing the database: the
demo's ledger exported, restored into a new data directory, verified there (issue 21)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_audit_cli import _env, _exported, demo_dir
from tests.e2e.test_cli import run

__all__ = ["demo_dir"]  # the fixture, imported so pytest finds it here

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]  # the demo, then a few commands


def test_restore_into_a_new_data_directory_then_verify(demo_dir: Path, tmp_path: Path) -> None:
    bundle, key = _exported(demo_dir, tmp_path)
    fresh = tmp_path / "new-var"
    restored = run("ledger", "restore", str(bundle), "--public-key", str(key), env=_env(fresh))
    assert restored.returncode == 0, restored.stderr
    assert "restored 8 entries" in restored.stdout
    assert "the next entry is seq 9" in restored.stdout
    assert "OK 8 entries" in restored.stdout
    verified = run("ledger", "verify", "--public-key", str(key), env=_env(fresh))
    assert verified.returncode == 0
    assert verified.stdout.startswith("OK 8 entries")
    again = run("ledger", "restore", str(bundle), "--public-key", str(key), env=_env(fresh))
    assert again.returncode == 2
    assert again.stderr.startswith("not restored: the database already holds a ledger")


def test_restore_refuses_what_does_not_verify(demo_dir: Path, tmp_path: Path) -> None:
    bundle, key = _exported(demo_dir, tmp_path)
    edited = tmp_path / "edited.jsonl"
    edited.write_text(bundle.read_text().replace("20.032", "2.032"))
    broken = run(
        "ledger", "restore", str(edited), "--public-key", str(key), env=_env(tmp_path / "a")
    )
    assert broken.returncode == 1
    assert "broken at seq 7" in broken.stderr
    unkeyed = run("ledger", "restore", str(bundle), env=_env(tmp_path / "b"))
    assert unkeyed.returncode == 3  # no --public-key, nothing pinned, no signing key there
    assert "no trusted key" in unkeyed.stderr
    assert "Traceback" not in broken.stderr + unkeyed.stderr
