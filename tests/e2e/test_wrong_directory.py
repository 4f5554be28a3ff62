"""Issue 12.7: one-shot commands run where there is no data say so; they invent nothing.

Run from another directory, `liaison inbox` used to start an embedded server
on a fresh `./var` and answer "has no alerts" (exit 0), and `liaison ledger
verify` died with a SQLAlchemy traceback after creating `./var`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_cli import run

ONE_SHOT = [
    ("inbox", "IMT-GULISTAN"),
    ("ack", "IMT-GULISTAN", "6f1c2b0e-0000-4000-8000-000000000000"),
    ("ledger", "verify"),
    ("ledger", "replay"),
    ("ledger", "stats"),
    ("ledger", "trail", "6f1c2b0e-0000-4000-8000-000000000000"),
    ("ledger", "export", "bundle.jsonl"),
    ("ledger", "public-key"),
    ("dlq", "list"),
    ("dlq", "retry", "1-0"),
]


def _refused(result_stderr: str, returncode: int, data_dir: Path) -> None:
    assert returncode != 0
    assert "Traceback" not in result_stderr
    [line] = result_stderr.strip().splitlines()  # one line
    assert "LIAISON_DATA_DIR" in line
    assert str(data_dir.resolve()) in line


@pytest.mark.parametrize("command", ONE_SHOT, ids=" ".join)
def test_in_a_directory_without_data_nothing_is_invented(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    result = run(*command, cwd=tmp_path)  # LIAISON_DATA_DIR unset: ./var, which is not there
    _refused(result.stderr, result.returncode, tmp_path / "var")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "command", [c for c in ONE_SHOT if c[0] != "ledger"] + [("ledger", "verify")], ids=" ".join
)
def test_an_empty_data_directory_gets_no_server_and_no_ledger(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    data = tmp_path / "elsewhere"
    data.mkdir()
    result = run(*command, env={"LIAISON_DATA_DIR": str(data)}, cwd=tmp_path)
    _refused(result.stderr, result.returncode, data)
    assert list(data.iterdir()) == []


def test_a_ledger_named_by_url_that_does_not_exist_is_not_created(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite3"
    env = {"LIAISON_DATABASE_URL": f"sqlite+aiosqlite:///{ledger}",
           "LIAISON_DATA_DIR": str(tmp_path)}  # fmt: skip
    result = run("ledger", "verify", env=env)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "LIAISON_DATABASE_URL" in result.stderr
    assert str(ledger) in result.stderr
    assert not ledger.exists()
