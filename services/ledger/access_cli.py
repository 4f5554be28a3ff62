"""``liaison access …`` (the data-protection officer's commands) and the access record of the
auditor's own reads on the command line (``ledger replay``, ``ledger export``).

The command line has no token: its reader is the account on this host, ``cli:<OS user>``
(as ``liaison ack`` records it). Its reads are written straight into the access chain, in
the ledger's database, before a line of the data is written out.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import sys
from contextlib import aclosing
from typing import Annotated, Any

import typer
from rich.table import Table

from services.core.access import PersonIndex, access_record, clean_purpose, shown_in
from services.core.config import ConfigError
from services.core.problems import Problem
from services.core.settings import Settings, settings_from_env
from services.core.terminal import console as make_console
from services.core.terminal import safe
from services.ledger.access_store import AccessStore
from services.ledger.open import open_existing_ledger
from services.ledger.scan import Query
from services.ledger.store import SqlLedger

app = typer.Typer(
    no_args_is_help=True,
    help="The access record: who read which personal data, when and why (for the DPO).",
)
console = make_console()
_PERSONS = '"persons":[{'


def cli_reader() -> tuple[str, str, None]:
    """``cli:<OS user>`` as a reader (the uid when the account has no name)."""
    try:
        name = f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        name = f"cli:uid-{os.getuid()}"
    return name, "auditor", None


def purpose_of(raw: str | None) -> str | None:
    """``--purpose`` checked as the API checks it; a one-line error otherwise."""
    try:
        return clean_purpose(raw, "--purpose")
    except Problem as exc:
        message = (exc.errors or [{"message": exc.title}])[0]["message"]
        raise ConfigError(f"--purpose: {message}") from None


async def record_cli_read(
    ledger: SqlLedger, settings: Settings, channel: str, purpose: str | None, query: Query
) -> dict[str, Any] | None:
    """Record what ``query`` will show of persons, before it is shown; a one-line error when a
    purpose is required and missing. None when it shows nobody."""
    index = PersonIndex.at(settings.access_index_key_path, create=True)
    named = []
    async with aclosing(ledger.pages(query)) as pages:
        async for page in pages:
            named += [json.loads(row[4]) for row in page if _PERSONS in row[4]]
    shown = shown_in(named, index)
    if not shown:
        return None
    if purpose is None and settings.access_purpose == "required":
        raise ConfigError(
            "this shows personal data: say why with --purpose (LIAISON_ACCESS_PURPOSE=required)"
        )
    record = access_record(cli_reader(), channel, purpose, shown)
    await AccessStore(ledger.engine).append([record])
    return record


def _run_access(work: Any) -> Any:
    async def main() -> Any:
        settings = settings_from_env()
        ledger = open_existing_ledger(settings)
        try:
            await ledger.create_schema()
            return await work(settings, AccessStore(ledger.engine))
        finally:
            await ledger.close()

    return asyncio.run(main())


@app.command()
def report(
    person: Annotated[
        str, typer.Option("--person", help="The person's document number, as on the document.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, one read each.")] = False,
) -> None:
    """Every recorded read of one person's data: when, who, through what, why, which events."""

    async def work(settings: Settings, store: AccessStore) -> list[dict[str, Any]]:
        index = PersonIndex.at(settings.access_index_key_path, create=False)
        return await store.report(index.digest(person))

    entries: list[dict[str, Any]] = _run_access(work)
    if as_json:
        for entry in entries:
            sys.stdout.write(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")
        return
    table = Table(title=f"Reads of the person with document {safe(person)}: {len(entries)}")
    for column in ("seq", "at", "principal", "person", "channel", "purpose", "events"):
        table.add_column(column)
    for entry in entries:
        r = entry["record"]
        events = ", ".join(f"{source.removeprefix('/units/')}/{id_}" for source, id_ in r["events"])
        table.add_row(
            str(entry["seq"]), safe(r["at"]), safe(r["principal"]), safe(r.get("person") or ""),
            safe(r["channel"]), safe(r.get("purpose") or "—"), safe(events),
        )  # fmt: skip
    console.print(table)


@app.command()
def verify(
    as_json: Annotated[bool, typer.Option("--json", help="The result as JSON.")] = False,
) -> None:
    """Recompute the access chain: exit 0 ``OK``, 1 ``BROKEN`` naming the first bad entry."""

    async def work(settings: Settings, store: AccessStore) -> Any:
        return await store.verify()

    result = _run_access(work)
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict()) + "\n")
    elif result.ok:
        console.print(f"OK: {result.count} access entries, head {result.head}", highlight=False)
    else:
        for problem in result.problems:
            typer.echo(f"BROKEN: {problem}", err=True)
    if not result.ok:
        raise typer.Exit(1)
