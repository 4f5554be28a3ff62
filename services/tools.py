"""The CLI's one-shot commands: inbox, ack, route, ledger replay and verify."""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from rich.console import Console
from rich.table import Table

from schemas.events import CloudEvent
from schemas.topology import Topology
from services.bus import RedisPublisher
from services.config import ConfigError, Settings, read_file_config, resolve_topology
from services.notifier.handlers import Acknowledger, NotifierDeps, acknowledge, facts_of
from services.notifier.inbox import RedisInbox
from services.notifier.routing import route_alert
from services.redis_client import connect
from services.redis_server import EmbeddedRedis


@asynccontextmanager
async def connect_redis(settings: Settings) -> AsyncIterator[Redis]:
    """The configured server, else the running embedded one, else a short-lived embedded one."""
    embedded = None
    url = settings.redis_url
    url_file = settings.data_dir / "redis" / "url"
    if url is None and url_file.exists():
        url = url_file.read_text().strip()
        probe = Redis.from_url(url)
        try:
            await probe.ping()
        except RedisConnectionError:
            url = None
        finally:
            await probe.aclose()
    if url is None:
        embedded = EmbeddedRedis(settings.data_dir / "redis", appendfsync=settings.appendfsync)
        url = embedded.start()
    client = connect(url)
    try:
        yield client
    finally:
        await client.aclose()
        if embedded is not None:
            embedded.stop()


def _topology(settings: Settings) -> Topology:
    return resolve_topology(read_file_config(settings.config))


def print_route(event: CloudEvent, topology: Topology, console: Console, *, as_json: bool) -> None:
    """Who would receive this alert, why, and with which view."""
    try:
        recipients = route_alert(facts_of(event), topology)
    except TypeError as exc:
        raise ConfigError(str(exc)) from None
    if as_json:
        doc = {"recipients": [{"unit": r.unit, "reasons": [str(x) for x in r.reasons],
                               "view": str(r.view)} for r in recipients]}  # fmt: skip
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    table = Table(title=f"Recipients of {event.id} from {event.unit}")
    for column in ("unit", "reasons", "view"):
        table.add_column(column)
    for r in recipients:
        table.add_row(r.unit, ", ".join(r.reasons), str(r.view))
    console.print(table)


async def show_inbox(settings: Settings, unit: str, console: Console) -> None:
    """Print a unit's deliveries."""
    if unit not in _topology(settings):
        raise ConfigError(f"unknown unit {unit!r}")
    async with connect_redis(settings) as redis:
        items = await RedisInbox(redis).list(unit)
    table = Table(title=f"Inbox of {unit}")
    # the officer copies the id into `liaison ack`: never cut it short
    table.add_column(
        "alert", no_wrap=True, min_width=max((len(i["alert_id"]) for i in items), default=5)
    )
    for column in (
        "from",
        "severity",
        "reasons",
        "view",
        "delivered",
        "acknowledged",
        "state",
    ):
        table.add_column(column)
    for item in items:
        table.add_row(item["alert_id"], item["alert_source"], item.get("severity", ""),
                      ", ".join(item["reasons"]), item["view"], item["delivered_at"],
                      item["acknowledged_at"] or "—", item["state"])  # fmt: skip
    console.print(table if items else f"{unit} has no alerts")


async def acknowledge_alert(
    settings: Settings,
    unit: str,
    alert_id: str,
    officer: str | None,
    note: str | None,
    console: Console,
) -> None:
    """Acknowledge on behalf of an officer of the unit, as ``cli:<OS user>``.

    The command line has no token: who ran it is the account on this host (one that can
    reach the server), recorded as the principal beside the typed ``officer`` name.
    """
    topology = _topology(settings)
    if unit not in topology:
        raise ConfigError(f"unknown unit {unit!r}")
    by = Acknowledger(principal=cli_principal(), officer=officer, note=note)
    async with connect_redis(settings) as redis:
        window = int(settings.dedupe_window.total_seconds())
        retention = settings.inbox_retention.total_seconds()
        inbox = RedisInbox(redis, dedupe_window=window, retention=retention)
        deps = NotifierDeps(topology, inbox, RedisPublisher(redis, **settings.publisher_options))
        stored = await acknowledge(unit, alert_id, by, deps)
    if stored is None:
        raise ConfigError(f"{unit} has not received alert {alert_id!r}")
    typed = f" (typed name {stored['officer']!r})" if stored.get("officer") else ""
    console.print(
        f"{alert_id} acknowledged by {stored['acknowledged_by']}{typed}"
        f" at {stored['acknowledged_at']}",
        markup=False,
        highlight=False,
    )


def cli_principal() -> str:
    """``cli:<OS user>``: who runs a one-shot command (the uid when the account has no name)."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"cli:uid-{os.getuid()}"
