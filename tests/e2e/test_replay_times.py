"""``liaison ledger replay --since/--until``: explicit UTC offsets, and times without one said
to be UTC (issue 12.11: ``--since 2024-03-15`` silently meant UTC midnight)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from schemas.events import CloudEvent
from services.core.settings import Settings
from services.ledger.open import open_ledger
from tests.e2e.test_cli import run

EVENTS = Path(__file__).parents[2] / "examples" / "events"
# the examples' times in UTC: raised 01:40Z, updated 04:10Z, seizure 09:05Z, closed 09:30Z
# on 2024-03-15, cancelled 06:00Z on 2024-03-16 (they are written at +05:00, Tashkent)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ledger holding the agency examples."""
    path = tmp_path_factory.mktemp("replay")

    async def create() -> None:
        ledger = open_ledger(Settings(data_dir=path, redis_url=None, database_url=None))
        await ledger.create_schema()
        await ledger.append(
            [  # the alert and seizure examples (the operations' are of 2026)
                CloudEvent.from_json(p.read_bytes())
                for p in sorted(EVENTS.glob("*.json"))
                if p.name.startswith(("alert.", "seizure."))
            ]
        )
        await ledger.close()

    asyncio.run(create())
    return path


def _replay(data_dir: Path, *args: str) -> tuple[list[str], str]:
    result = run("ledger", "replay", *args, env={"LIAISON_DATA_DIR": str(data_dir)})
    assert result.returncode == 0, result.stderr
    ids = [json.loads(line)["event"]["id"] for line in result.stdout.splitlines()]
    return ids, result.stderr


def test_an_explicit_offset_is_honoured(data_dir: Path) -> None:
    ids, note = _replay(
        data_dir, "--since", "2024-03-15T09:00+05:00", "--until", "2024-03-15T14:10+05:00"
    )
    assert ids == ["OYBEK-2024-0315-01-U1", "GULISTAN-2024-0315-07"]  # 04:10Z and 09:05Z
    assert note == ""  # nothing to explain


def test_a_time_without_offset_is_said_to_be_utc(data_dir: Path) -> None:
    ids, note = _replay(data_dir, "--since", "2024-03-16")
    assert ids == ["OYBEK-2024-0316-02-X"]
    assert "--since 2024-03-16 has no UTC offset: read as 2024-03-16T00:00:00+00:00 (UTC)" in note
    ids, note = _replay(data_dir, "--until", "2024-03-15T06:00")
    assert ids == ["OYBEK-2024-0315-01", "OYBEK-2024-0315-01-U1"]
    assert "--until 2024-03-15T06:00 has no UTC offset: read as 2024-03-15T06:00:00+00:00" in note


def test_the_help_says_how_times_are_read() -> None:
    result = run("ledger", "replay", "--help", env={"COLUMNS": "200"})
    assert result.returncode == 0
    assert "UTC offset" in result.stdout
    assert "+05:00" in result.stdout
