"""Issue 12.12: `liaison inbox` is readable at 80 columns, scriptable with --json, shows notices.

The inbox is built by a real runtime on a data directory (embedded server,
SQLite ledger): a flash alert from BLO-OYBEK with a 1 s deadline, acknowledged
at IMT-GULISTAN, escalated at IMT-TASHKENT (so NIAC-UZ gets notices). Then the
`liaison` command reads it the way a duty officer would, at COLUMNS=80.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas.alerts import AlertRef
from schemas.events import CloudEvent
from services.bootstrap import Runtime
from services.core.config import AckDeadlines, FileConfig
from services.core.settings import Settings
from services.notifier.acknowledgement import Acknowledger, acknowledge
from tests import factories
from tests.e2e.test_cli import run

SUMMARY = "KAMAZ truck suspected of carrying heroin"


async def _build(data_dir: Path, alert: dict[str, Any]) -> None:
    settings = Settings(data_dir=data_dir, redis_url=None, database_url=None, config=None)
    config = FileConfig(ack_deadlines=AckDeadlines(flash=timedelta(seconds=1)))
    async with Runtime(settings, config) as runtime:
        await runtime.publisher.publish([CloudEvent.model_validate(alert)])
        ref = AlertRef("BLO-OYBEK", alert["id"])
        async with asyncio.timeout(30):
            while not await runtime.inbox.get("IMT-GULISTAN", ref):
                await asyncio.sleep(0.05)
            by = Acknowledger("gulistan-duty", "Dilshod Karimov", "Duty officer Karimov")
            await acknowledge("IMT-GULISTAN", ref, by, runtime.notifier)
            while not await runtime.inbox.notices("NIAC-UZ"):
                await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
def inbox_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    data_dir = tmp_path_factory.mktemp("inbox") / "var"
    alert = factories.alert()
    alert["data"] |= {"severity": "flash", "summary": SUMMARY}
    asyncio.run(_build(data_dir, alert))
    return data_dir, alert["id"]


def _inbox(data_dir: Path, unit: str, *options: str) -> str:
    result = run("inbox", unit, *options, env={"LIAISON_DATA_DIR": str(data_dir), "COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def test_at_80_columns_each_alert_reads_summary_first_and_nothing_is_cut(
    inbox_dir: tuple[Path, str],
) -> None:
    data_dir, alert_id = inbox_dir
    out = _inbox(data_dir, "IMT-TASHKENT")
    lines = out.splitlines()
    assert max(map(len, lines)) <= 80, out
    summary = next(i for i, line in enumerate(lines) if SUMMARY in line)
    ident = next(i for i, line in enumerate(lines) if alert_id in line)  # whole, to copy
    assert summary < ident
    block = "\n".join(lines[summary : ident + 1])
    assert "FLASH" in lines[summary]
    assert "BLO-OYBEK" in block  # origin
    assert "neighbour" in block  # why it came here
    assert "deadline" in block
    assert "overdue" in block  # not acknowledged, deadline passed
    assert "ESCALATED" in block
    assert "not acknowledged" in block


def test_who_acknowledged_is_shown(inbox_dir: tuple[Path, str]) -> None:
    data_dir, _ = inbox_dir
    out = _inbox(data_dir, "IMT-GULISTAN")
    assert max(map(len, out.splitlines())) <= 80, out
    assert "acknowledged by gulistan-duty (Dilshod Karimov)" in out  # who authenticated
    assert "typed name: Duty officer Karimov" in out
    assert "overdue" not in out


def test_a_coordinator_sees_its_notices(inbox_dir: tuple[Path, str]) -> None:
    data_dir, alert_id = inbox_dir
    out = _inbox(data_dir, "NIAC-UZ")
    assert max(map(len, out.splitlines())) <= 80, out
    notices = out[out.index("Notices") :]
    assert "IMT-TASHKENT" in notices
    assert f"{alert_id} of BLO-OYBEK" in notices  # whose: units may share an id


def test_json_for_scripts(inbox_dir: tuple[Path, str]) -> None:
    data_dir, alert_id = inbox_dir
    doc = json.loads(_inbox(data_dir, "NIAC-UZ", "--json"))
    assert doc["unit"] == "NIAC-UZ"
    [alert] = doc["alerts"]
    assert alert["alert_id"] == alert_id
    assert alert["event"]["data"]["summary"] == SUMMARY
    assert {n["unit"] for n in doc["notices"]} >= {"IMT-TASHKENT"}
    tashkent = json.loads(_inbox(data_dir, "IMT-TASHKENT", "--json"))["alerts"][0]
    assert tashkent["escalated"] is True
    assert tashkent["acknowledged_at"] is None
