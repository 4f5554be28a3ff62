"""A duty officer at the command line: the unit's inbox, and acknowledging an alert."""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import pytest
import redis

from services.core import streams
from services.core.redis_server import EmbeddedRedis
from tests.e2e.test_cli import run


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory after the demo: an alert from BLO-OYBEK, delivered and closed."""
    path = tmp_path_factory.mktemp("demo")
    assert run("demo", "--data-dir", str(path)).returncode == 0
    return path


def _env(path: Path) -> dict[str, str]:
    return {"LIAISON_DATA_DIR": str(path)}


def _alert_id(path: Path) -> str:
    replay = run("ledger", "replay", "--type", "alert.raised", env=_env(path))
    [line] = replay.stdout.splitlines()
    alert_id: str = json.loads(line)["event"]["id"]
    return alert_id


def test_inbox_lists_the_units_alerts(demo_dir: Path) -> None:
    result = run("inbox", "IMT-TASHKENT", env=_env(demo_dir))
    assert result.returncode == 0, result.stderr
    assert _alert_id(demo_dir) in result.stdout
    assert "closed" in result.stdout
    assert "has no alerts" in run("inbox", "IMT-SAMARKAND", env=_env(demo_dir)).stdout


def test_ack_is_recorded_once_and_idempotent(demo_dir: Path) -> None:
    alert_id = _alert_id(demo_dir)
    first = run("ack", "IMT-TASHKENT", alert_id, "--officer", "Tashkent duty", env=_env(demo_dir))
    assert first.returncode == 0, first.stderr
    who = f"acknowledged by cli:{getpass.getuser()} (typed name 'Tashkent duty')"
    assert who in first.stdout
    again = run("ack", "IMT-TASHKENT", alert_id, "--officer", "someone else", env=_env(demo_dir))
    assert again.returncode == 0
    assert who in again.stdout  # the first acknowledgement stands

    with EmbeddedRedis(demo_dir / "redis") as server:  # the receipt waits for the ledger there
        client = redis.Redis.from_url(server.url)
        receipts = [json.loads(f[b"__data__"]) for _, f in client.xrange(streams.RECEIPTS)]
        client.close()
    acks = [r for r in receipts if r["type"] == "alert.acknowledged"]
    [ack] = [a["data"] for a in acks if a["data"]["unit"] == "IMT-TASHKENT"]
    assert (ack["principal"], ack["officer"]) == (f"cli:{getpass.getuser()}", "Tashkent duty")


def test_a_blank_officer_name_is_refused_and_nothing_is_recorded(demo_dir: Path) -> None:
    alert_id = _alert_id(demo_dir)
    blank = run("ack", "NIAC-UZ", alert_id, "--officer", "   ", env=_env(demo_dir))
    assert blank.returncode == 2
    assert "officer" in blank.stderr
    assert "Traceback" not in blank.stderr
    with EmbeddedRedis(demo_dir / "redis") as server:
        client = redis.Redis.from_url(server.url)
        acked = client.hexists(f"{streams.inbox_key('NIAC-UZ')}:acks", alert_id)
        client.close()
    assert not acked


@pytest.mark.parametrize(
    ("unit", "message"),
    [("IMT-SAMARKAND", "has not received alert"), ("IMT-NOWHERE", "unknown unit")],
)
def test_ack_where_the_alert_never_went_is_a_clear_error(
    demo_dir: Path, unit: str, message: str
) -> None:
    result = run("ack", unit, _alert_id(demo_dir), env=_env(demo_dir))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
