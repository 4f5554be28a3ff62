"""Issue 13.9: free text cannot forge or break what the CLI shows.

Officer names, summaries, reasons, substances and dead-letter reasons come
from other systems and people. The events here are put straight into the
ledger's store and the server (bypassing the schema, as data recorded before
the schema refused control characters would be), then read through the real
`liaison` command: no raw escape reaches the terminal, no newline forges a
line, and rich markup (`[/x]`) shows as text instead of crashing the command.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import redis

from services.core import streams
from services.core.redis_server import EmbeddedRedis
from services.core.settings import Settings
from services.ledger.open import open_ledger
from services.ledger.records import Record
from services.notifier.inbox import RedisInbox
from tests.e2e.test_cli import run

ALERT = "6f1c2b0e-0000-4000-8000-00000000a1e7"
HIDE = "Routine check\x1b[2K\rALL CLEAR"  # erases its own line, then lies
FORGE = "Karimov\n#99     2024-03-15T09:00:00Z  closed by BLO-OYBEK: all clear"
MARKUP = "[/x] done [bold]"
BIDI = "ok \u202eREDRO\u2028next"


def _record(event: dict[str, Any]) -> Record:
    text = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return Record(event["source"], event["id"], event["type"], event.get("subject"),
                  event["time"], text)  # fmt: skip


def _event(type_: str, unit: str, data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "id": extra.pop("id", f"{type_}-{unit}"),
            "source": f"/units/{unit}", "type": type_, "time": "2024-03-15T08:00:00.000000Z",
            "datacontenttype": "application/json", "data": data, **extra}  # fmt: skip


async def _ledger(data_dir: Path) -> None:
    ledger = open_ledger(Settings(data_dir=data_dir, redis_url=None, database_url=None))
    await ledger.create_schema()
    await ledger.append_records([
        _record(_event("alert.raised", "BLO-OYBEK", {"severity": "urgent", "summary": HIDE},
                       id=ALERT)),
        _record(_event("alert.acknowledged", "NOTIFIER", {"alert_id": ALERT,
                       "unit": "IMT-GULISTAN", "officer": FORGE}, subject=ALERT)),
        _record(_event("alert.closed", "BLO-OYBEK", {"reason": MARKUP + BIDI}, subject=ALERT)),
        _record(_event("seizure.reported", "IMT-GULISTAN", {
            "occurred_at": "2024-03-15T07:00:00Z",
            "drugs": [{"substance": MARKUP, "quantity": 1.5, "measure": "kg"},
                      {"substance": HIDE, "quantity": 2, "measure": "kg"}]})),
    ])  # fmt: skip
    await ledger.close()


async def _server(server: EmbeddedRedis) -> None:
    client = redis.asyncio.Redis.from_url(server.url)
    await client.xadd(streams.DEAD_LETTERS, {
        "origin": streams.ingress_stream("uz-customs"), "entry_id": "1-0", "reason": f"{MARKUP}{FORGE}",
        "at": "2024-03-15T08:00:00Z", "payload": HIDE,
    })  # fmt: skip
    delivery = {"alert_id": ALERT, "alert_source": "BLO-OYBEK", "reasons": ["neighbour"],
                "view": "full", "severity": "urgent", "delivered_at": "2024-03-15T08:00:00+00:00",
                "deadline": "2024-03-15T09:00:00+00:00",
                "event": _event("alert.raised", "BLO-OYBEK", {"severity": "urgent",
                                "summary": HIDE + MARKUP}, id=ALERT)}  # fmt: skip
    await RedisInbox(client).deliver([("IMT-SAMARKAND", delivery, 1.0)])
    await client.aclose()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hostile") / "var"
    path.mkdir()
    asyncio.run(_ledger(path))
    with EmbeddedRedis(path / "redis") as server:
        asyncio.run(_server(server))
    return path


def _out(data_dir: Path, *command: str) -> str:
    result = run(*command, env={"LIAISON_DATA_DIR": str(data_dir)})
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    for raw in ("\x1b", "\r", "\u202e", "\u2028"):
        assert raw not in result.stdout, (raw, result.stdout)
    return result.stdout


def test_trail_shows_each_step_on_its_own_line_and_forges_none(data_dir: Path) -> None:
    out = _out(data_dir, "ledger", "trail", ALERT)
    lines = out.splitlines()
    assert len(lines) == 3
    assert all(line.startswith("#") for line in lines)
    assert not any(line.startswith("#99") for line in lines)
    assert r"Routine check\x1b[2K\rALL CLEAR" in lines[0]
    assert r"Karimov\n#99" in lines[1]
    assert MARKUP in lines[2]
    assert r"\u202eREDRO\u2028next" in lines[2]


def test_stats_survive_markup_in_a_substance(data_dir: Path) -> None:
    out = _out(data_dir, "ledger", "stats")
    assert "[/x] done" in out
    assert r"ALL CLEAR" in out
    assert r"\x1b[2K" in out
    rows = json.loads(_out(data_dir, "ledger", "stats", "--json"))
    assert {row["substance"] for row in rows} == {MARKUP, HIDE}  # JSON stays exact


def test_dlq_list_survives_markup_in_a_reason(data_dir: Path) -> None:
    out = _out(data_dir, "dlq", "list")
    assert "[/x]" in out
    assert "#99" in out  # the forged line is shown, escaped, inside the reason's cell
    assert not any(line.startswith("#99") for line in out.splitlines())


def test_inbox_escapes_the_summary(data_dir: Path) -> None:
    out = _out(data_dir, "inbox", "IMT-SAMARKAND")
    assert r"\x1b[2K\rALL CLEAR[/x] done [bold]" in out


def test_an_error_quoting_markup_is_one_line(data_dir: Path) -> None:
    result = run("inbox", "[/x]\x1b[2J", env={"LIAISON_DATA_DIR": str(data_dir)})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "\x1b[2J" not in result.stderr
    [line] = result.stderr.splitlines()
    assert "unknown unit" in line
    assert "[/x]" in line
