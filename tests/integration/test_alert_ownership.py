"""Whose alert it is: an alert is its source's, never shadowed, changed only by its source.

Issue 12, defect 9 (another unit's change is refused at ingest when the owner
is known) and issue 13, finding 4 (a foreign publisher taking an id first
suppressed the genuine alert).
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from rich.console import Console

from schemas.events import CloudEvent
from schemas.topology import default_topology
from services.bootstrap import Runtime
from services.core import streams
from services.core.alert_register import AlertRegister
from services.core.auth import token_digest
from services.core.bus import RedisPublisher, ensure_groups
from services.core.config import AckDeadlines, ConfigError, Principal, Role, Webhook
from services.core.settings import Settings
from services.entrypoints.http import create_app
from services.ingest import dlq
from services.ingest.adapters import ADAPTERS
from services.ingest.importer import import_file
from services.ledger import audit
from services.notifier.cli import acknowledge_alert
from tests import factories
from tests.integration.conftest import auth, eventually, principals_config
from tests.integration.console_client import ORIGIN, post_form, sign_in
from tests.integration.test_webhooks import SECRET, Receiver, receiver

__all__ = ["receiver"]  # a fixture, imported so pytest finds it here

TJ_TOKEN, NIAC_TOKEN = "tj-border-token", "niac-officer-token"
TAKEN = "BT-2024/0200"


def _tj() -> dict[str, str]:
    return {"Authorization": f"Bearer {TJ_TOKEN}"}


def _niac() -> dict[str, str]:
    return {"Authorization": f"Bearer {NIAC_TOKEN}"}


@asynccontextmanager
async def _start(
    redis_url: str, data_dir: Path, webhooks: tuple[Webhook, ...] = ()
) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    extra = (
        Principal(
            name="tj-border",
            role=Role.PUBLISHER,
            token_sha256=token_digest(TJ_TOKEN),
            units=("BLO-FOTEHOBOD",),
        ),
        Principal(
            name="niac-duty",
            role=Role.OFFICER,
            token_sha256=token_digest(NIAC_TOKEN),
            unit="NIAC-UZ",
        ),
    )
    base = principals_config()
    config = base.model_copy(
        update={
            "principals": base.principals + extra,
            "webhooks": webhooks,
            "ack_deadlines": AckDeadlines(flash=timedelta(seconds=1)),
        }
    )
    settings = Settings(data_dir=data_dir, redis_url=redis_url, database_url=None, config=None)
    async with Runtime(settings, config) as runtime:
        transport = httpx.ASGITransport(app=create_app(runtime.deps()))
        async with httpx.AsyncClient(transport=transport, base_url="http://liaison") as api:
            yield runtime, api


@pytest.fixture
async def system(
    redis_url: str, data_dir: Path
) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    async with _start(redis_url, data_dir) as pair:
        yield pair


async def _inbox(api: httpx.AsyncClient, unit: str) -> list[dict[str, Any]]:
    response = await api.get(f"/v1/units/{unit}/alerts", headers=auth("auditor"))
    assert response.status_code == 200
    alerts: list[dict[str, Any]] = response.json()["alerts"]
    return alerts


async def _ledger(api: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await api.get("/v1/ledger/events?limit=1000", headers=auth("auditor"))
    return [e["event"] for e in response.json()["events"]]


def _tj_alert(**extra: Any) -> dict[str, Any]:
    """BLO-FOTEHOBOD's alert, also to IMT-GULISTAN: flash, so it escalates within a second."""
    data = {"severity": "flash", "summary": "decoy", "recipients": ["IMT-GULISTAN"]}
    return factories.event("alert.raised", "BLO-FOTEHOBOD", data, releasableto="TJ,UZ", **extra)


def _change(kind: str, unit: str, alert_id: str) -> dict[str, Any]:
    return factories.event(kind, unit, {"reason": "seized"}, subject=alert_id, releasableto="UZ,TJ")


async def _delivered_to(api: httpx.AsyncClient, unit: str, origin: str, alert_id: str) -> None:
    async def arrived() -> bool:
        return any(
            (a["alert_source"], a["alert_id"]) == (origin, alert_id)
            for a in await _inbox(api, unit)
        )

    await eventually(arrived)


# --- issue 13, finding 4: an id taken first shadows nothing ---------------------------------


async def test_a_foreign_publisher_taking_an_id_first_suppresses_nothing(
    redis_url: str, data_dir: Path, receiver: tuple[Receiver, str]
) -> None:
    recv, base = receiver
    hook = Webhook(unit="IMT-GULISTAN", url=f"{base}/gulistan", secret=SECRET, allow_http=True)
    async with _start(redis_url, data_dir, (hook,)) as (runtime, api):
        decoy = _tj_alert(id=TAKEN)
        assert (await api.post("/v1/events", json=decoy, headers=_tj())).status_code == 202
        await _delivered_to(api, "IMT-GULISTAN", "BLO-FOTEHOBOD", TAKEN)
        genuine = factories.alert(id=TAKEN)  # BLO-OYBEK's, urgent: no escalation here
        published = await api.post("/v1/events", json=genuine, headers=auth("customs"))
        assert published.status_code == 202
        assert published.json() == {"accepted": [TAKEN], "duplicates": []}

        # each reaches its own recipients; the unit that gets both keeps both
        for unit in ("IMT-TASHKENT", "IMT-GULISTAN", "BLO-FOTEHOBOD", "NIAC-UZ"):
            await _delivered_to(api, unit, "BLO-OYBEK", TAKEN)
        for unit in ("IMT-GULISTAN", "BLO-OYBEK", "NIAC-UZ"):
            await _delivered_to(api, unit, "BLO-FOTEHOBOD", TAKEN)
        gulistan = {a["alert_source"]: a for a in await _inbox(api, "IMT-GULISTAN")}
        assert gulistan["BLO-OYBEK"]["event"]["data"]["summary"] == genuine["data"]["summary"]
        assert gulistan["BLO-FOTEHOBOD"]["event"]["data"]["summary"] == "decoy"
        assert await runtime.redis.xlen(streams.DEAD_LETTERS) == 0

        # acknowledging says which one; without a source it is ambiguous, never a guess
        ack = "/v1/units/IMT-GULISTAN/alerts/BT-2024/0200/ack"
        ambiguous = await api.post(ack, headers=auth("gulistan"))
        assert ambiguous.status_code == 409
        assert ambiguous.headers["content-type"] == "application/problem+json"
        assert ambiguous.json()["sources"] == ["BLO-FOTEHOBOD", "BLO-OYBEK"]
        acked = await api.post(f"{ack}?source=BLO-OYBEK", headers=auth("gulistan"))
        assert acked.status_code == 200
        assert (acked.json()["alert_source"], acked.json()["acknowledged_by"]) == (
            "BLO-OYBEK",
            "gulistan-duty",
        )
        at_niac = await api.post(
            "/v1/units/NIAC-UZ/alerts/BT-2024%2F0200/ack?source=/units/BLO-OYBEK", headers=_niac()
        )
        assert at_niac.status_code == 200

        # the decoy (flash, 1 s) escalates at IMT-GULISTAN; the genuine one, acknowledged, not
        async def decoy_escalated() -> bool:
            entries = {a["alert_source"]: a for a in await _inbox(api, "IMT-GULISTAN")}
            return bool(entries["BLO-FOTEHOBOD"]["escalated"])

        await eventually(decoy_escalated)
        gulistan = {a["alert_source"]: a for a in await _inbox(api, "IMT-GULISTAN")}
        assert gulistan["BLO-OYBEK"]["escalated"] is False
        assert gulistan["BLO-OYBEK"]["acknowledged_by"] == "gulistan-duty"
        assert gulistan["BLO-FOTEHOBOD"]["acknowledged_at"] is None

        # the decoy's owner closes its own alert only; the genuine owner closes the genuine one
        for kind, unit, headers in (
            ("alert.closed", "BLO-FOTEHOBOD", _tj()),
            ("alert.cancelled", "BLO-OYBEK", auth("customs")),
        ):
            response = await api.post(
                "/v1/events", json=_change(kind, unit, TAKEN), headers=headers
            )
            assert response.status_code == 202, response.text

        async def both_ended() -> bool:
            states = {a["alert_source"]: a["state"] for a in await _inbox(api, "IMT-GULISTAN")}
            return states == {"BLO-FOTEHOBOD": "closed", "BLO-OYBEK": "cancelled"}

        await eventually(both_ended)

        # webhooks: two deliveries, two webhook-ids
        async def both_hooked() -> bool:
            return len(recv.to("gulistan")) == 2

        await eventually(both_hooked)
        hooked = recv.to("gulistan")
        assert len({r.headers["webhook-id"] for r in hooked}) == 2
        assert {json.loads(r.body)["source"] for r in hooked} == {
            "/units/BLO-FOTEHOBOD",
            "/units/BLO-OYBEK",
        }

        # the ledger keeps them apart: receipts, acknowledgements, escalations, trails
        async def recorded() -> bool:
            types = [e["type"] for e in await _ledger(api)]
            return types.count("alert.acknowledged") == 2 and "alert.escalated" in types

        await eventually(recorded)
        events = await _ledger(api)
        delivered = [e for e in events if e["type"] == "alert.delivered"]
        assert len({e["id"] for e in delivered}) == len(delivered) == 7
        assert sorted(
            e["data"]["recipient"]
            for e in delivered
            if e["data"]["alert_source"] == "BLO-FOTEHOBOD"
        ) == ["BLO-OYBEK", "IMT-GULISTAN", "NIAC-UZ"]
        acks = {e["data"]["unit"]: e["data"] for e in events if e["type"] == "alert.acknowledged"}
        assert {a["alert_source"] for a in acks.values()} == {"BLO-OYBEK"}
        escalated = [e["data"] for e in events if e["type"] == "alert.escalated"]
        assert escalated
        assert {e["alert_source"] for e in escalated} == {"BLO-FOTEHOBOD"}
        assert await runtime.redis.xlen(streams.DEAD_LETTERS) == 0

        async def trail(source: str | None) -> list[str]:
            async with aclosing(audit.trail(runtime.ledger, TAKEN, source)) as steps:
                return [what async for _, _, what in steps]

        genuine_trail = await trail("BLO-OYBEK")
        assert genuine_trail[0].startswith("raised by BLO-OYBEK")
        assert not any("FOTEHOBOD" in step and "delivered" not in step for step in genuine_trail)
        assert sum("delivered" in step for step in genuine_trail) == 4
        assert (await trail("BLO-FOTEHOBOD"))[0] == "raised by BLO-FOTEHOBOD (flash): decoy"
        with pytest.raises(audit.AmbiguousAlert, match="BLO-FOTEHOBOD, BLO-OYBEK"):
            await trail(None)


async def test_the_same_source_raising_an_id_again_changes_nothing(
    system: tuple[Runtime, httpx.AsyncClient],
) -> None:
    runtime, api = system
    alert = factories.alert()
    await api.post("/v1/events", json=alert, headers=auth("customs"))
    await _delivered_to(api, "IMT-GULISTAN", "BLO-OYBEK", alert["id"])
    # past the dedupe window, the same (source, id) is appended again: still one alert
    async for key in runtime.redis.scan_iter(match=f"{streams.SEEN}:*"):
        await runtime.redis.delete(key)
    again = {**alert, "data": {**alert["data"], "summary": "something else"}}
    assert (await api.post("/v1/events", json=again, headers=auth("customs"))).status_code == 202

    async def read_twice() -> bool:
        groups: Any = await runtime.redis.xinfo_groups(streams.ALERTS)
        return all(g["entries-read"] == 2 and g["pending"] == 0 for g in groups)

    await eventually(read_twice)
    [entry] = await _inbox(api, "IMT-GULISTAN")
    assert entry["event"]["data"]["summary"] == alert["data"]["summary"]
    assert await runtime.redis.xlen(streams.DEAD_LETTERS) == 0


# --- issue 12, defect 9: another unit's change is refused at ingest --------------------------


async def _owned_alert(api: httpx.AsyncClient) -> dict[str, Any]:
    alert = factories.alert()
    await api.post("/v1/events", json=alert, headers=auth("customs"))
    await _delivered_to(api, "IMT-GULISTAN", "BLO-OYBEK", alert["id"])
    return alert


@pytest.mark.parametrize("kind", ["alert.closed", "alert.cancelled", "alert.updated"])
async def test_another_units_change_is_refused_at_ingest_naming_the_owner(
    system: tuple[Runtime, httpx.AsyncClient], kind: str
) -> None:
    runtime, api = system
    alert = await _owned_alert(api)
    data = {"summary": "hijacked"} if kind == "alert.updated" else {"reason": "not mine"}
    change = factories.event(kind, "IMT-GULISTAN", data, subject=alert["id"])
    response = await api.post("/v1/events", json=[factories.seizure(), change], headers=auth("mia"))
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert "BLO-OYBEK" in problem["detail"]
    assert problem["errors"] == [
        {
            "index": 1,
            "field": "subject",
            "message": f"alert {alert['id']!r} was raised by BLO-OYBEK: only BLO-OYBEK may change it",
        }
    ]
    assert await runtime.redis.xlen(streams.ALERTS) == 1  # all or nothing: nothing published
    assert await runtime.redis.xlen(streams.SEIZURES) == 0


async def test_a_unit_changing_its_own_alert_of_a_taken_id_is_accepted(
    system: tuple[Runtime, httpx.AsyncClient],
) -> None:
    runtime, api = system
    alert = await _owned_alert(api)
    mine = factories.event(
        "alert.raised", "IMT-GULISTAN", {"severity": "routine", "summary": "x"}, id=alert["id"]
    )
    close = _change("alert.closed", "IMT-GULISTAN", alert["id"])
    in_one_batch = await api.post("/v1/events", json=[mine, close], headers=auth("mia"))
    assert in_one_batch.status_code == 202, in_one_batch.text
    later = _change("alert.updated", "IMT-GULISTAN", alert["id"]) | {"data": {"summary": "y"}}
    # its own alert is published (the seen index knows it) even if no notifier delivered it yet
    assert (await api.post("/v1/events", json=later, headers=auth("mia"))).status_code == 202
    assert (
        await api.post(
            "/v1/events",
            json=_change("alert.closed", "BLO-OYBEK", alert["id"]),
            headers=auth("customs"),
        )
    ).status_code == 202

    async def all_closed() -> bool:
        return {a["state"] for a in await _inbox(api, "IMT-TASHKENT")} == {"closed"}

    await eventually(all_closed)
    assert await runtime.redis.xlen(streams.DEAD_LETTERS) == 0


async def test_a_change_of_an_alert_nobody_raised_yet_is_accepted(
    system: tuple[Runtime, httpx.AsyncClient],
) -> None:
    _, api = system
    early = _change("alert.closed", "IMT-GULISTAN", "not-yet-raised")
    assert (await api.post("/v1/events", json=early, headers=auth("mia"))).status_code == 202


async def test_another_units_change_on_the_ingress_is_dead_lettered_naming_the_owner(
    system: tuple[Runtime, httpx.AsyncClient],
) -> None:
    runtime, api = system
    alert = await _owned_alert(api)
    change = _change("alert.closed", "IMT-GULISTAN", alert["id"])  # uz-mia's unit
    ingress = streams.ingress_stream("uz-mia")
    await runtime.redis.xadd(ingress, {streams.EVENT_FIELD: json.dumps(change)})

    async def dead_lettered() -> bool:
        return await dlq.count(runtime.redis) == 1

    await eventually(dead_lettered)
    [letter] = await dlq.list_dead_letters(runtime.redis)
    assert letter.origin == ingress
    assert letter.reason == (
        f"invalid event: subject: alert {alert['id']!r} was raised by BLO-OYBEK: "
        "only BLO-OYBEK may change it"
    )
    assert await runtime.redis.xlen(streams.ALERTS) == 1
    with pytest.raises(dlq.StillInvalid, match="only BLO-OYBEK may change it"):
        await dlq.retry(runtime.redis, letter.id, runtime.topology, runtime.config.principals)


async def test_another_units_cancel_in_an_import_is_a_rejected_row(redis: Redis) -> None:
    await ensure_groups(redis)
    owner = CloudEvent.model_validate(factories.alert(id="BT-2024/0093"))  # BLO-OYBEK's
    await RedisPublisher(redis).publish([owner])
    await redis.hset(streams.ALERT_ORIGINS, owner.id, owner.source)  # as the notifier registers it
    xml = b"""<messages>
      <cancel number="2024/0094" ref="2024/0093" issued="2024-03-16T09:00:00+05:00" post="Dustlik">
        <reason>not ours to cancel</reason></cancel>
      <alert number="2024/0095" issued="2024-03-16T09:00:00+05:00" post="Dustlik" precedence="flash">
        <summary>ours</summary></alert>
      <cancel number="2024/0096" ref="2024/0095" issued="2024-03-16T09:05:00+05:00" post="Dustlik">
        <reason>ours to cancel</reason></cancel>
    </messages>"""
    summary = await import_file(
        ADAPTERS["border-xml"],
        io.BytesIO(xml),
        default_topology(),
        RedisPublisher(redis),
        owners=AlertRegister(redis),
        dead_letters=redis,
        label="bt.xml",
    )
    assert (summary.published, summary.rejected_rows) == (2, 1)
    [error] = summary.errors
    assert (error.row, error.field) == (1, "ref")
    assert (
        error.reason == "alert 'BT-2024/0093' was raised by BLO-OYBEK: only BLO-OYBEK may change it"
    )
    [letter] = await dlq.list_dead_letters(redis)
    assert letter.origin == "import:border-xml"
    assert "only BLO-OYBEK" in letter.reason


async def test_the_command_line_asks_whose_alert_when_a_unit_got_two_of_one_id(
    system: tuple[Runtime, httpx.AsyncClient],
) -> None:
    runtime, api = system
    await api.post("/v1/events", json=_tj_alert(id=TAKEN), headers=_tj())
    await api.post("/v1/events", json=factories.alert(id=TAKEN), headers=auth("customs"))
    for origin in ("BLO-FOTEHOBOD", "BLO-OYBEK"):
        await _delivered_to(api, "IMT-GULISTAN", origin, TAKEN)
    out = Console(file=io.StringIO(), width=200)
    with pytest.raises(ConfigError, match=r"from BLO-FOTEHOBOD, BLO-OYBEK: .*--source UNIT"):
        await acknowledge_alert(runtime.settings, "IMT-GULISTAN", TAKEN, "Lt. A", None, out)
    await acknowledge_alert(
        runtime.settings, "IMT-GULISTAN", TAKEN, "Lt. A", None, out, source="BLO-FOTEHOBOD"
    )
    said = out.file.getvalue()  # type: ignore[attr-defined]
    assert f"{TAKEN} of BLO-FOTEHOBOD acknowledged by cli:" in said
    entries = {a["alert_source"]: a["acknowledgement"] for a in await _inbox(api, "IMT-GULISTAN")}
    assert entries["BLO-FOTEHOBOD"]["officer"] == "Lt. A"
    assert entries["BLO-OYBEK"] is None


async def test_the_console_keeps_two_units_alerts_of_one_id_apart(
    system: tuple[Runtime, httpx.AsyncClient],
) -> None:
    _, api = system
    await api.post("/v1/events", json=_tj_alert(id=TAKEN), headers=_tj())
    genuine = factories.alert(id=TAKEN)
    await api.post("/v1/events", json=genuine, headers=auth("customs"))
    for origin in ("BLO-FOTEHOBOD", "BLO-OYBEK"):
        await _delivered_to(api, "IMT-GULISTAN", origin, TAKEN)
    page = "/console/units/IMT-GULISTAN/alerts/BT-2024%2F0200"
    csrf = await sign_in(api, "gulistan")
    inbox = (await api.get("/console/units/IMT-GULISTAN?show=all")).text
    for origin in ("BLO-FOTEHOBOD", "BLO-OYBEK"):
        assert f'href="{page}?source={origin}"' in inbox
    assert (await api.get(page)).status_code == 409  # which one? never a guess
    decoy = await api.get(f"{page}?source=BLO-FOTEHOBOD")
    assert decoy.status_code == 200
    assert "decoy" in decoy.text
    mine = await api.get(f"{page}?source=BLO-OYBEK")
    assert genuine["data"]["summary"] in mine.text
    assert "decoy" not in mine.text
    form = {"csrf_token": csrf, "alert_id": TAKEN}
    ack = "/console/units/IMT-GULISTAN/acknowledge"
    assert (await post_form(api, ack, form)).status_code == 409
    assert (await post_form(api, ack, form | {"alert_source": "BLO-OYBEK"})).status_code == 303
    acked = {a["alert_source"]: a["acknowledged_at"] for a in await _inbox(api, "IMT-GULISTAN")}
    assert acked["BLO-OYBEK"] is not None
    assert acked["BLO-FOTEHOBOD"] is None

    await api.post("/console/logout", data={"csrf_token": csrf}, headers={"Origin": ORIGIN})
    api.cookies.clear()
    await sign_in(api, "auditor")
    trail = "/console/alerts/BT-2024%2F0200"

    # The ledger records both alerts and their deliveries on its own time, after the inboxes.
    async def recorded() -> bool:
        story = await api.get(f"{trail}?source=BLO-OYBEK")
        return (await api.get(trail)).status_code == 409 and "BLO-FOTEHOBOD" in story.text

    await eventually(recorded)
    assert (await api.get(trail)).status_code == 409
    story = await api.get(f"{trail}?source=BLO-OYBEK")
    assert story.status_code == 200
    assert "decoy" not in story.text
    assert "BLO-FOTEHOBOD" in story.text  # a recipient of the genuine alert, not its origin
    csv = await api.get(
        "/console/export/trail.csv", params={"alert_id": TAKEN, "source": "BLO-FOTEHOBOD"}
    )
    assert "decoy" in csv.text
    assert "IMT-TASHKENT" not in csv.text  # the genuine alert's recipient
