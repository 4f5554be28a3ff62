"""docs/ledger.md, what an auditor reads: the stored text verbatim, in constant memory.

"replay lines and ``GET /v1/ledger/events`` embed the stored event text as it is": an
event published in a form a JSON round trip would change (a number written ``20.0320``, a
``\\u`` escape) is stored as published, and both show those very bytes, which hash to the
entry's hash by the docs' formula (computed here with ``hashlib``). "Replay, export and
verify stream the table through one database cursor in constant memory": each command's
peak of Python allocations is measured (``tracemalloc``, in a process of its own) on a
ledger and on one four times as large; holding the table would add megabytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from schemas.events import CloudEvent
from services.bootstrap import Runtime
from services.core import streams
from services.core.settings import Settings
from services.entrypoints.http import create_app
from services.ledger.open import open_ledger
from services.ledger.records import record_of_event
from tests import factories
from tests.e2e.test_cli import LIAISON
from tests.integration.conftest import auth, eventually, principals_config


def _published_text() -> str:
    """A seizure as canonical text, but for two spots a round trip through JSON would
    rewrite: a trailing zero and an escaped letter."""
    seizure = CloudEvent.model_validate(factories.seizure(grams=20032)).to_json().decode()
    assert '"quantity":20.032' in seizure
    text = seizure.replace('"quantity":20.032', '"quantity":20.0320', 1)
    text = text.replace('"measure":"kg"', '"measure":"\\u006bg"', 1)
    assert text.startswith('{"data":{')  # stored as published (docs/ledger.md)
    assert json.loads(text) == json.loads(seizure)  # the same event, other bytes
    assert json.dumps(json.loads(text), sort_keys=True, separators=(",", ":")) != text
    return text


def _oracle_hash(prev_hash: str, seq: int, recorded_at: str, event: str) -> str:
    """docs/ledger.md: SHA-256(bytes.fromhex(prev) ‖ UTF-8("<seq>\\n<recorded_at>\\n") ‖
    UTF-8(event))."""
    payload = bytes.fromhex(prev_hash) + f"{seq}\n{recorded_at}\n".encode() + event.encode()
    return hashlib.sha256(payload).hexdigest()


@pytest.fixture
def text() -> str:
    """What is published."""
    return _published_text()


@pytest.fixture
async def recorded(
    redis_url: str, redis: Redis, data_dir: Path, text: str
) -> AsyncIterator[Runtime]:
    """A runtime whose ledger recorded ``text``, published on the seizure stream."""
    settings = Settings(data_dir=data_dir, redis_url=redis_url, database_url=None, config=None)
    async with Runtime(settings, principals_config()) as runtime:
        await redis.xadd(streams.SEIZURES, {streams.EVENT_FIELD: text})

        async def stored() -> bool:
            return await runtime.ledger.count() == 1

        await eventually(stored)
        yield runtime


async def test_the_events_api_and_replay_show_the_stored_bytes(
    recorded: Runtime, data_dir: Path, text: str
) -> None:
    with closing(sqlite3.connect(data_dir / "ledger.sqlite3")) as db:
        [(seq, recorded_at, prev_hash, entry_hash, stored)] = db.execute(
            "SELECT seq, recorded_at, prev_hash, hash, event FROM ledger_entries"
        ).fetchall()
    assert stored == text
    assert entry_hash == _oracle_hash(prev_hash, seq, recorded_at, text)

    transport = httpx.ASGITransport(app=create_app(recorded.deps()))
    async with httpx.AsyncClient(transport=transport, base_url="http://x") as api:
        page = await api.get("/v1/ledger/events", headers=auth("auditor"))
    assert page.status_code == 200, page.text
    assert f'"event":{text}'.encode() in page.content

    env = {k: v for k, v in os.environ.items() if not k.startswith("LIAISON_")}
    replay = await asyncio.to_thread(
        subprocess.run,
        [LIAISON, "ledger", "replay"],
        env=env | {"LIAISON_DATA_DIR": str(data_dir)},
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert replay.returncode == 0, replay.stderr
    [line] = replay.stdout.splitlines()
    assert f'"event":{text}'.encode() in line
    entry = json.loads(line)
    assert entry["hash"] == entry_hash


# --- constant memory ---------------------------------------------------------------------------

SMALL, LARGE = 6_000, 18_000
PADDING = 600
"""Characters of free text per event: the large ledger holds ~20 MB of event text."""
EVERY = 100
"""Checkpoints this often: verify holds the rows since the last one (their indexed columns
are checked against its digest), so it plateaus once a ledger is a stretch long."""
GROWTH = 4 * 2**20
"""What may separate the peaks of the small and the large run: holding the large table's
text alone would take five times that. Readers hold two pages of 2,000 rows (one fetched
ahead), so both ledgers are several pages long."""

MEASURE = textwrap.dedent(
    """
    import sys, tracemalloc
    tracemalloc.start()
    from services.entrypoints.cli import main
    sys.argv = ["liaison", *sys.argv[1:]]
    try:
        main()
    except SystemExit:
        pass
    print(tracemalloc.get_traced_memory()[1], file=sys.stderr)
    """
)


async def _ledger(directory: Path, entries: int) -> Path:
    """A data directory whose signed ledger holds ``entries`` padded seizure reports."""
    os.mkdir(directory, mode=0o700)
    settings = Settings(data_dir=directory, redis_url=None, config=None, checkpoint_every=EVERY)
    ledger = open_ledger(settings)
    try:
        await ledger.create_schema()
        for first in range(0, entries, 500):
            batch = []
            for _ in range(first, min(first + 500, entries)):
                raw = factories.seizure()
                raw["data"]["concealment"] = "x" * PADDING
                batch.append(record_of_event(CloudEvent.model_validate(raw)))
            await ledger.append_records(batch)
        await ledger.checkpoint_if_due(force=True)
    finally:
        await ledger.close()
    return directory


@pytest.fixture(scope="module")
async def ledgers(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """A small and a large ledger, built once for the three commands."""
    root = tmp_path_factory.mktemp("ledgers")
    return {n: await _ledger(root / str(n), n) for n in (SMALL, LARGE)}


def _peak(data_dir: Path, *command: str) -> int:
    """Peak bytes of Python allocations of ``liaison COMMAND`` on this data directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIAISON_")}
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, *command],
        env=env | {"LIAISON_DATA_DIR": str(data_dir)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        check=False,
    )
    *said, peak = done.stderr.strip().splitlines()
    assert not any("Traceback" in line for line in said), done.stderr
    return int(peak)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("command", ["replay", "export", "verify"])
def test_reading_the_whole_ledger_takes_constant_memory(
    ledgers: dict[int, Path], tmp_path: Path, command: str
) -> None:
    args = {
        "replay": ("ledger", "replay"),
        "export": ("ledger", "export", str(tmp_path / "bundle.jsonl")),
        "verify": ("ledger", "verify"),
    }[command]
    small, large = (_peak(ledgers[n], *args) for n in (SMALL, LARGE))
    print(f"{command}: peak {small / 2**20:.1f} MiB for {SMALL}, {large / 2**20:.1f} for {LARGE}")
    assert large - small < GROWTH
