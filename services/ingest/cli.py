"""``liaison import`` and ``liaison dlq …``: feeding agency files, tending the dead letters."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from services.core.alert_register import AlertRegister
from services.core.bus import RedisPublisher, Unavailable, ensure_groups
from services.core.config import ConfigError, read_file_config, resolve_topology
from services.core.keyring import Registry
from services.core.one_shot import connect_redis
from services.core.settings import Settings
from services.core.settings import settings_from_env as _settings
from services.core.terminal import console as make_console
from services.core.terminal import printable, safe
from services.ingest import dlq
from services.ingest.adapters import adapter_named
from services.ingest.adapters.base import FileUnreadable
from services.ingest.importer import ImportSummary, import_file

console = make_console()
errors = make_console(stderr=True)
dlq_app = typer.Typer(no_args_is_help=True, help="The dead-letter stream: list, retry.")
EXCERPT = 60


async def run_import(
    settings: Settings, adapter_name: str, path: Path, dead_letter: bool, out: Console
) -> ImportSummary:
    """Import one file; the summary (rejected rows included)."""
    try:
        adapter = adapter_named(adapter_name)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    config = read_file_config(settings.config)
    topology = resolve_topology(config)
    try:
        file = path.open("rb")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=out,
        transient=True,
        disable=not out.is_terminal,
    )
    with file, bar:
        task = bar.add_task(f"{adapter.name} {path.name}", total=os.fstat(file.fileno()).st_size)
        async with connect_redis(settings, create=True) as redis:
            await ensure_groups(redis)  # before anything publishes
            try:
                options = settings.publisher_options
                return await import_file(
                    adapter,
                    file,
                    topology,
                    RedisPublisher(redis, **options),
                    owners=AlertRegister(redis, dedupe_window=options["dedupe_window"]),
                    dead_letters=redis if dead_letter else None,
                    label=path.name,
                    progress=lambda: bar.update(task, completed=file.tell()),
                    registry=Registry.of_principals(config.principals),
                )
            except FileUnreadable as exc:
                raise ConfigError(f"{path}: {exc}") from None


def print_summary(summary: ImportSummary, path: Path, dead_letter: bool, out: Console) -> None:
    """Published, duplicates, rejected — and each rejected row with its reasons."""
    out.print(
        f"{printable(path.name)}: {summary.rows} rows: {summary.published} published, "
        f"{summary.duplicates} duplicates, {summary.rejected_rows} rejected",
        highlight=False,
        markup=False,
    )
    for error in summary.errors:  # a row's text is the agency's: no escape may reach the screen
        out.print(
            f"  row {error.row}: {printable(error.field)}: {printable(error.reason)}",
            highlight=False,
            markup=False,
        )
    if dead_letter and summary.rejected_rows:
        out.print(
            f"{summary.rejected_rows} rejected rows kept on the dead-letter stream "
            "(liaison dlq list)",
            highlight=False,
        )


def import_command(
    file: Annotated[Path, typer.Argument(help="The agency's export file.")],
    adapter: Annotated[
        str, typer.Option("--adapter", help="customs-csv, mia-jsonl or border-xml.")
    ],
    dead_letter: Annotated[
        bool,
        typer.Option("--dead-letter", help="Also keep rejected rows on the dead-letter stream."),
    ] = False,
) -> None:
    """Feed an agency file through its adapter; exit 2 if any row was rejected."""
    try:
        summary = asyncio.run(run_import(_settings(), adapter, file, dead_letter, console))
    except Unavailable as exc:  # e.g. strict durability and no fsync: nothing to summarise
        errors.print(
            f"[red]unavailable:[/] {safe(str(exc))}: the batch is not confirmed; run the import "
            "again (rows already published count as duplicates)",
            soft_wrap=True,
            highlight=False,
        )
        raise typer.Exit(1) from None
    print_summary(summary, file, dead_letter, console)
    raise typer.Exit(2 if summary.rejected_rows else 0)


@dlq_app.command("list")
def list_command(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    limit: Annotated[int, typer.Option(help="Show at most this many, oldest first.")] = 100,
) -> None:
    """Entries of the dead-letter stream: id, origin, reason, time, payload."""

    async def main() -> tuple[list[dlq.DeadLetter], int]:
        async with connect_redis(_settings()) as redis:
            return await dlq.list_dead_letters(redis, limit), await dlq.count(redis)

    letters, total = asyncio.run(main())
    if as_json:
        doc = {"total": total, "entries": [letter.to_dict() for letter in letters]}
        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        return
    if not letters:
        console.print("the dead-letter stream is empty")
        return
    table = Table(title=f"Dead letters ({len(letters)} of {total})")
    for column in ("id", "origin", "entry", "reason", "at", "payload"):
        table.add_column(column, overflow="fold")
    for letter in letters:
        excerpt = letter.to_dict()["payload"]
        excerpt = excerpt if len(excerpt) <= EXCERPT else excerpt[: EXCERPT - 1] + "…"
        cells = (letter.id, letter.origin, letter.entry_id, letter.reason, letter.at, excerpt)
        table.add_row(*map(safe, cells))
    console.print(table)


@dlq_app.command("retry")
def retry_command(entry_id: Annotated[str, typer.Argument(help="The dead letter's id.")]) -> None:
    """Re-drive one entry; it leaves the dead-letter stream only if that succeeded."""
    settings = _settings()
    config = read_file_config(settings.config)
    topology = resolve_topology(config)

    async def main() -> str:
        async with connect_redis(settings) as redis:
            await ensure_groups(redis)
            return await dlq.retry(redis, entry_id, topology, config.principals)

    try:
        done = asyncio.run(main())
    except dlq.NotFound as exc:
        raise ConfigError(str(exc)) from None
    except dlq.StillInvalid as exc:
        errors.print(f"[red]still invalid, kept:[/] {safe(exc)}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    console.print(
        f"{safe(entry_id)} re-driven: {safe(done)}; removed from the dead-letter stream",
        highlight=False,
    )
