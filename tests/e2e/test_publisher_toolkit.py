"""The publisher toolkit and the auditor's verdict as a user runs them: ``liaison keys new``,
``liaison sign``, ``liaison ledger verify --bundle`` on a bundle with signed events."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from services.core import dsse
from services.core.config import Principal
from services.core.keyring import Registry
from tests.e2e.test_cli import run

EXAMPLE = Path(__file__).parents[2] / "examples" / "events" / "alert.raised.json"


def test_keys_new_then_sign_gives_an_event_the_exchange_verifies(tmp_path: Path) -> None:
    key = tmp_path / "uz-customs-k1.pem"
    made = run("keys", "new", str(key))
    assert made.returncode == 0, made.stderr
    assert key.stat().st_mode & 0o777 == 0o600
    public = made.stdout.strip()
    dsse.public_key(public)  # Base64 of 32 raw bytes
    again = run("keys", "new", str(key))
    assert again.returncode == 2
    assert "never overwritten" in again.stderr
    signed = run("sign", str(EXAMPLE), "--key", str(key), "--keyid", "uz-customs/k1")
    assert signed.returncode == 0, signed.stderr
    event = json.loads(signed.stdout)
    publisher = Principal.model_validate(
        {"name": "uz-customs", "role": "publisher", "token_sha256": "0" * 64,
         "units": ["BLO-OYBEK"], "signatures": "required",
         "keys": [{"id": "k1", "public_key": public}]}
    )  # fmt: skip
    registry = Registry.of_principals([publisher])
    assert registry.check(event, datetime.now(UTC), "uz-customs") == "uz-customs/k1"


def test_sign_refuses_an_invalid_event_in_one_located_line(tmp_path: Path) -> None:
    key = tmp_path / "k.pem"
    run("keys", "new", str(key))
    bad = json.loads(EXAMPLE.read_text())
    del bad["data"]["severity"]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    result = run("sign", str(path), "--key", str(key), "--keyid", "uz-customs/k1")
    assert result.returncode == 2
    assert "data.severity" in result.stderr
    assert "Traceback" not in result.stderr
