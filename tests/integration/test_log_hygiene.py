"""What callers send reaches the logs escaped: one record, one line (issue 13, item 14)."""

from __future__ import annotations

import logging
from urllib.parse import quote

import httpx
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from services.bootstrap import Runtime
from services.core import log_hygiene
from tests.integration.conftest import auth

FORGED = "a-1\u2028INFO ledger: chain OK\r\nWARNING \x1b[2Jcleared"


async def test_the_503_handler_logs_a_callers_path_escaped(
    runtime: Runtime,
    api: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def down(*_: object) -> None:
        raise RedisConnectionError("connection refused")

    monkeypatch.setattr(runtime.api_inbox, "received", down)  # the first read of an acknowledgement
    # The route takes the id as the path up to "/ack", which a "\n" never matches (no id
    # holds one): the forgery keeps its "\r", U+2028 and escape.
    path = f"/v1/units/IMT-GULISTAN/alerts/{quote(FORGED.replace(chr(10), ''), safe='')}/ack"
    with caplog.at_level(logging.WARNING, logger="services.core.problems"):
        response = await api.post(path, headers=auth("gulistan"))
    assert response.status_code == 503, response.text
    [record] = [r for r in caplog.records if "unavailable" in r.getMessage()]
    line = record.getMessage()
    assert not {"\n", "\r", "\u2028", "\x1b"} & set(line), repr(line)
    assert "a-1\\u2028INFO ledger: chain OK" in line
    assert "\\x1b[2Jcleared" in line


def test_every_field_of_a_record_is_escaped_whoever_logs_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log_hygiene.install()
    log = logging.getLogger("faststream.anything")  # not ours: the factory covers every logger
    with caplog.at_level(logging.INFO):
        log.info("dead-lettering %s: %r (%d tries)", FORGED, ValueError(FORGED), 3)
        log.info("%(id)s", {"id": FORGED})
        log.info(FORGED)
    lines = [r.getMessage() for r in caplog.records]
    escaped = "a-1\\u2028INFO ledger: chain OK\\r\\nWARNING \\x1b[2Jcleared"
    assert lines == [
        f"dead-lettering {escaped}: ValueError('{escaped}') (3 tries)",
        escaped,
        escaped,
    ]


def test_printable_text_is_left_alone() -> None:
    assert (
        log_hygiene.escape("Ташкент: 20 kg героин, «KAMAZ» ✓") == "Ташкент: 20 kg героин, «KAMAZ» ✓"
    )
