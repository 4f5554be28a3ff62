"""Neither bearer tokens nor persons' identities ever reach a log record, even at DEBUG."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from services.bootstrap import Runtime
from services.core.auth import Authenticator
from services.core.config import Principal
from services.core.settings import Settings
from services.entrypoints.http import create_app
from tests import factories
from tests.integration.conftest import TOKENS, auth, eventually, principals_config

PERSON = {"name": "Nodira Secretova", "nationality": "TJ", "document": "PX-7319946"}


def _everything_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in list(logging.root.manager.loggerDict):
        caplog.set_level(logging.DEBUG, logger=name)


def _leaks(caplog: pytest.LogCaptureFixture, secrets: list[str]) -> list[str]:
    found = []
    for record in caplog.records:
        text = f"{record.getMessage()} {record.exc_text or ''} {record.stack_info or ''}"
        if record.exc_info and record.exc_info[1] is not None:
            text += repr(record.exc_info[1])
        found += [f"{record.name}: {secret!r}" for secret in secrets if secret in text]
    return found


async def test_publish_deliver_and_ack_log_no_token_and_no_person(
    redis_url: str, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _everything_at_debug(caplog)
    settings = Settings(data_dir=data_dir, redis_url=redis_url, database_url=None, config=None)
    async with Runtime(settings, principals_config()) as runtime:
        transport = httpx.ASGITransport(app=create_app(runtime.deps()))
        async with httpx.AsyncClient(transport=transport, base_url="http://liaison") as api:
            alert = factories.alert()
            alert["data"]["persons"] = [PERSON]
            assert (await api.post("/v1/events", json=alert, headers=auth("customs"))).is_success
            url = f"/v1/units/IMT-GULISTAN/alerts/{alert['id']}/ack"

            async def acknowledged() -> bool:
                response = await api.post(url, json={"note": "seen"}, headers=auth("gulistan"))
                return response.status_code == 200

            await eventually(acknowledged)

            async def in_the_ledger() -> bool:
                page = await api.get("/v1/ledger/events?limit=1000", headers=auth("auditor"))
                types = [e["event"]["type"] for e in page.json()["events"]]
                return "alert.acknowledged" in types

            await eventually(in_the_ledger)
            await api.get("/v1/units/IMT-GULISTAN/alerts", headers={"Authorization": "Bearer nope"})
    assert caplog.records, "nothing was logged: the capture is not working"
    secrets = [*TOKENS.values(), "nope", PERSON["name"], PERSON["document"]]
    leaks = _leaks(caplog, secrets)
    assert leaks == [], "\n".join(leaks)


def test_tokens_are_held_only_as_digests() -> None:
    authenticator = Authenticator(principals_config().principals)
    held = repr(vars(authenticator)) + repr(principals_config().model_dump())
    assert not [token for token in TOKENS.values() if token in held]
    assert all(len(p.token_sha256) == 64 for p in principals_config().principals)
    assert "token_sha256" in Principal.model_fields
    assert not {"token", "password", "secret"} & set(Principal.model_fields)
