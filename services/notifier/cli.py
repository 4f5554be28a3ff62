"""The notifier's one-shot commands: ``liaison inbox``, ``ack`` and ``route``."""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from schemas.events import CloudEvent
from schemas.topology import Topology
from services.core.bus import RedisPublisher
from services.core.config import ConfigError, read_file_config, resolve_topology
from services.core.one_shot import connect_redis
from services.core.operations import Operation
from services.core.settings import Settings
from services.core.terminal import safe
from services.notifier.acknowledgement import Acknowledger, acknowledge
from services.notifier.handlers import NotifierDeps, facts_of
from services.notifier.inbox import RedisInbox
from services.notifier.inbox_view import print_inbox
from services.notifier.lookup import AmbiguousAlert, received_alert
from services.notifier.routing import route_alert


def _topology(settings: Settings) -> Topology:
    return resolve_topology(read_file_config(settings.config))


def print_route(
    event: CloudEvent,
    topology: Topology,
    console: Console,
    *,
    as_json: bool,
    operation: Sequence[CloudEvent] = (),
) -> None:
    """Who would receive this alert, why, and with which view; ``operation``: the
    ``operation.opened`` event of the alert's operation (its members receive it, nobody else)."""
    try:
        members = _members(event, operation)
        recipients = route_alert(facts_of(event, members), topology)
    except TypeError as exc:
        raise ConfigError(str(exc)) from None
    if as_json:
        doc = {
            "recipients": [
                {"unit": r.unit, "reasons": [str(x) for x in r.reasons], "view": str(r.view)}
                for r in recipients
            ]
        }
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    table = Table(title=f"Recipients of {safe(event.id)} from {safe(event.unit)}")
    for column in ("unit", "reasons", "view"):
        table.add_column(column)
    for r in recipients:
        table.add_row(safe(r.unit), safe(", ".join(r.reasons)), safe(r.view))
    console.print(table)


def _members(event: CloudEvent, operation: Sequence[CloudEvent]) -> frozenset[str] | None:
    """The members of the alert's operation, from its ``operation.opened`` event."""
    if event.operation is None:
        if operation:
            raise ConfigError("--operation: the alert names no operation")
        return None
    if not operation:
        raise ConfigError(
            f"the alert belongs to operation {event.operation}: "
            "give its operation.opened event with --operation FILE"
        )
    opened = Operation.of(operation[0])
    if opened.name != event.operation:
        raise ConfigError(
            f"--operation: it opens {opened.name}, the alert belongs to {event.operation}"
        )
    return opened.members


async def show_inbox(settings: Settings, unit: str, console: Console, *, as_json: bool) -> None:
    """Print a unit's deliveries and notices (``as_json``: as the HTTP API's inbox document)."""
    if unit not in _topology(settings):
        raise ConfigError(f"unknown unit {unit!r}")
    async with connect_redis(settings) as redis:
        inbox = RedisInbox(redis)
        items, notices = await inbox.list(unit), await inbox.notices(unit)
    if as_json:
        doc = {"unit": unit, "alerts": items, "notices": notices}
        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        return
    print_inbox(unit, items, notices, console)


async def acknowledge_alert(
    settings: Settings,
    unit: str,
    alert_id: str,
    officer: str | None,
    note: str | None,
    console: Console,
    source: str | None = None,
) -> None:
    """Acknowledge on behalf of an officer of the unit, as ``cli:<OS user>``.

    The command line has no token: who ran it is the account on this host (one that can
    reach the server), recorded as the principal beside the typed ``officer`` name.
    ``source``: whose alert, when the unit received alerts of this id from several units.
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
        try:
            alert = await received_alert(inbox, unit, alert_id, source)
        except AmbiguousAlert as exc:
            raise ConfigError(f"{exc} (--source UNIT)") from None
        except ValueError as exc:
            raise ConfigError(f"--source: {exc}") from None
        stored = None if alert is None else await acknowledge(unit, alert, by, deps)
    if alert is None or stored is None:
        whose = f" from {source}" if source else ""
        raise ConfigError(f"{unit} has not received alert {alert_id!r}{whose}")
    typed = f" (typed name {safe(repr(stored['officer']))})" if stored.get("officer") else ""
    console.print(
        f"{safe(alert_id)} of {safe(alert.origin)} acknowledged by "
        f"{safe(stored['acknowledged_by'])}{typed} at {safe(stored['acknowledged_at'])}",
        highlight=False,
    )


def cli_principal() -> str:
    """``cli:<OS user>``: who runs a one-shot command (the uid when the account has no name)."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"cli:uid-{os.getuid()}"
