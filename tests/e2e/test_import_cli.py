"""``liaison import`` and ``liaison dlq`` as an operator runs them."""

from __future__ import annotations

import asyncio
import json
from importlib import resources
from pathlib import Path

from redis.asyncio import Redis

from services.core import streams
from services.core.bus import dead_letter
from tests import factories
from tests.e2e.test_cli import run

SAMPLES = resources.files("services.ingest.adapters") / "samples"


async def liaison(
    redis_url: str, data_dir: Path, *args: str, config: Path | None = None
) -> tuple[int, str, str]:
    """``liaison ARGS`` against the test server; exit code, stdout, stderr."""
    env = {"LIAISON_REDIS_URL": redis_url, "LIAISON_DATA_DIR": str(data_dir)}
    if config is not None:
        env["LIAISON_CONFIG"] = str(config)
    result = await asyncio.to_thread(run, *args, env=env)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout, result.stderr


async def test_import_summary_and_a_reimport_publishes_nothing_new(
    redis: Redis, redis_url: str, data_dir: Path
) -> None:
    sample = str(SAMPLES / "scc-seizures.csv")
    code, out, _ = await liaison(redis_url, data_dir, "import", "--adapter", "customs-csv", sample)
    assert code == 0, out
    assert "8 rows: 8 published, 0 duplicates, 0 rejected" in out
    code, out, _ = await liaison(redis_url, data_dir, "import", "--adapter", "customs-csv", sample)
    assert code == 0, out
    assert "8 rows: 0 published, 8 duplicates, 0 rejected" in out
    assert await redis.xlen(streams.SEIZURES) == 8


async def test_rejected_rows_exit_2_and_can_be_retried_from_the_dead_letters(
    redis: Redis, redis_url: str, data_dir: Path, tmp_path: Path
) -> None:
    cases = tmp_path / "cases.jsonl"
    good = {"case_no": 1, "division": "IMT Gulistan", "opened": "2024-03-14T09:20:00+05:00",
            "items": [{"substance": "героин", "amount": 20032, "uom": "г"}]}  # fmt: skip
    bad = {**good, "case_no": 2, "items": [{"substance": "sugar", "amount": 1, "uom": "kg"}]}
    cases.write_text(f"{json.dumps(good)}\n{{broken\n{json.dumps(bad)}\n")
    args = ("import", "--adapter", "mia-jsonl", str(cases), "--dead-letter")
    code, out, _ = await liaison(redis_url, data_dir, *args)
    assert code == 2
    assert "3 rows: 1 published, 0 duplicates, 2 rejected" in out
    assert "row 2: (row): not JSON" in out
    assert "row 3: items.0.substance: unknown substance 'sugar'" in out

    code, out, _ = await liaison(redis_url, data_dir, "dlq", "list", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["total"] == 2
    letter = doc["entries"][1]
    assert (letter["origin"], letter["entry_id"]) == ("import:mia-jsonl", "cases.jsonl row 3")
    assert "unknown substance 'sugar'" in letter["reason"]

    code, _, err = await liaison(redis_url, data_dir, "dlq", "retry", letter["id"])
    assert code == 2
    assert "still invalid, kept" in err
    code, out, _ = await liaison(redis_url, data_dir, "dlq", "list")
    assert "import:mia-jsonl" in out


async def test_retry_publishes_and_removes_a_fixed_entry(
    redis: Redis, redis_url: str, data_dir: Path, tmp_path: Path
) -> None:
    config = tmp_path / "liaison.yaml"  # an ingress entry is retried for its publisher's units
    config.write_text(
        "principals:\n  - {name: uz-mia, role: publisher, units: [IMT-GULISTAN], "
        f"token_sha256: '{'0' * 64}'}}\n",
        encoding="utf-8",
    )
    event = factories.seizure()
    origin = streams.ingress_stream("uz-mia")
    letter_id = await dead_letter(
        redis, origin=origin, reason="redis was down", payload=json.dumps(event)
    )
    code, out, err = await liaison(redis_url, data_dir, "dlq", "retry", letter_id, config=config)
    assert code == 0, err
    assert code == 0, out
    assert "published seizure.reported" in out
    assert await redis.xlen(streams.DEAD_LETTERS) == 0
    assert await redis.xlen(streams.SEIZURES) == 1


async def test_user_errors_are_one_line(redis_url: str, data_dir: Path, tmp_path: Path) -> None:
    code, _, err = await liaison(redis_url, data_dir, "import", "--adapter", "fax", "x.csv")
    assert (code, "unknown adapter 'fax'") == (2, err.split("error: ")[1][:21])
    code, _, err = await liaison(redis_url, data_dir, "import", "--adapter", "customs-csv",
                                 str(tmp_path / "missing.csv"))  # fmt: skip
    assert code == 2
    assert "cannot read" in err
    header_only = tmp_path / "wrong.csv"
    header_only.write_text("a;b;c\n")
    code, _, err = await liaison(redis_url, data_dir, "import", "--adapter", "customs-csv",
                                 str(header_only))  # fmt: skip
    assert code == 2
    assert "the header lacks column(s) reg_no" in err
    code, _, err = await liaison(redis_url, data_dir, "dlq", "retry", "1-1")
    assert code == 2
    assert "no dead letter 1-1" in err
