"""``liaison ledger …``: the auditor's commands."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from datetime import UTC, datetime
from enum import IntEnum
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from rich.table import Table

from services.core.config import ConfigError, read_file_config
from services.core.settings import settings_from_env
from services.core.terminal import console as make_console
from services.core.terminal import printable, safe
from services.ledger import audit, provenance, witness, witness_cli, witness_store
from services.ledger.access_cli import purpose_of, record_cli_read
from services.ledger.notary import SignerRefused
from services.ledger.open import open_existing_ledger
from services.ledger.records import utc_text
from services.ledger.scan import Query
from services.ledger.signing import load_public_keys, public_pem
from services.ledger.store import SqlLedger
from services.ledger.verify import VerifyReport
from services.ledger.witness import Witnessed

app = typer.Typer(
    no_args_is_help=True, help="Audit the ledger: replay, verify, trail, stats, export."
)
console = make_console()
notes = make_console(stderr=True)
T = TypeVar("T")


def _run(work: Callable[[SqlLedger], Awaitable[T]]) -> T:
    async def main() -> T:
        ledger = open_existing_ledger(settings_from_env())  # never a new one: see there
        try:
            await ledger.create_schema()
            return await work(ledger)
        finally:
            await ledger.close()

    return asyncio.run(main())


PURPOSE_HELP = (
    "Why personal data is read (a case reference), recorded in the access record; required "
    "when LIAISON_ACCESS_PURPOSE=required and the entries name persons."
)
TIME_HELP = (
    "(ISO 8601: 2024-03-15, 2024-03-15T08:00+05:00 or …Z); without a UTC offset it is read"
    " as UTC, and a note on stderr says so."
)


def _time(value: str | None, option: str) -> str | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{option}: {value!r} is not an ISO 8601 date or time") from None
    if moment.tzinfo is None:  # say so: 2024-03-15 is midnight in UTC, not in Tashkent
        moment = moment.replace(tzinfo=UTC)
        notes.print(
            f"note: {option} {safe(value)} has no UTC offset: read as {moment.isoformat()} "
            f"(UTC); give one for local time, e.g. {moment.replace(tzinfo=None).isoformat()}+05:00",
            highlight=False,
            soft_wrap=True,
        )
    return utc_text(moment)


class Exit(IntEnum):
    """``liaison ledger verify``'s exit codes (docs/ledger.md, "Exit codes")."""

    OK = 0
    """The chain and its checkpoints verify with a key the auditor trusts."""
    BROKEN = 1
    """Something was altered, deleted or is missing: the first bad seq is named."""
    USAGE = 2
    """The command could not run: unreadable bundle or key, bad option, no data directory."""
    UNVERIFIED = 3
    """Consistent, but no trusted key vouches for it: the origin is unverified."""


def _report(report: VerifyReport, where: str) -> Exit:
    if not report.ok:
        console.print(
            f"BROKEN at seq {report.first_bad_seq}: {safe('; '.join(report.problems))}",
            highlight=False,
        )
        return Exit.BROKEN
    if not report.origin_verified:
        console.print(
            f"UNVERIFIED ORIGIN: {report.count} entries and {report.checkpoints} checkpoints are "
            f"consistent, but {where}, not by a key you trust: whoever could write it could have "
            "signed it. Verify with --public-key KEY.pem (the key the ledger's operators gave you), "
            "or pin it in LIAISON_TRUSTED_KEYS.",
            highlight=False,
        )
        return Exit.UNVERIFIED
    keys = ", ".join(report.trusted_keys)
    console.print(
        f"OK {report.count} entries, {report.checkpoints} signed checkpoints verified "
        f"(key {keys or 'none needed'}), head {report.head}",
        highlight=False,
    )
    if report.unsigned:
        console.print(
            f"note: the last {report.unsigned} entries are not signed yet (the ledger "
            "signs them within CHECKPOINT_INTERVAL)",
            highlight=False,
        )
    return Exit.OK


def _trusted_keys(files: list[Path] | None) -> dict[str, Ed25519PublicKey] | None:
    """The keys given with --public-key, else those pinned in LIAISON_TRUSTED_KEYS, else None."""
    paths = files or ([pinned] if (pinned := settings_from_env().trusted_keys) else [])
    keys: dict[str, Ed25519PublicKey] = {}
    for path in paths:
        try:
            keys |= load_public_keys(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: cannot read a public key: {exc}") from None
    return keys or None


@app.command()
def replay(
    after: Annotated[int, typer.Option(help="Only entries after this seq.")] = 0,
    type_: Annotated[
        list[str] | None, typer.Option("--type", help="Only these types (repeatable).")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help=f"Event time at or after this {TIME_HELP}")
    ] = None,
    until: Annotated[str | None, typer.Option(help=f"Event time before this {TIME_HELP}")] = None,
    purpose: Annotated[str | None, typer.Option(help=PURPOSE_HELP)] = None,
) -> None:
    """Entries as JSON lines — one CloudEvent each with its seq and hash — streamed; what it
    shows of persons is recorded in the access record first."""
    query = Query(
        after=after,
        types=tuple(type_ or ()),
        since=_time(since, "--since"),
        until=_time(until, "--until"),
    )
    why = purpose_of(purpose)

    async def work(ledger: SqlLedger) -> int:
        await record_cli_read(ledger, settings_from_env(), "cli.replay", why, query)
        return await audit.replay(ledger, query, sys.stdout)

    _run(work)


@app.command()
def verify(
    bundle: Annotated[
        Path | None, typer.Option(help="Verify an exported bundle offline instead.")
    ] = None,
    public_key: Annotated[
        list[Path] | None,
        typer.Option(help="Trust this public key (PEM; repeatable, a file may hold several)."),
    ] = None,
    witness_key: Annotated[
        list[Path] | None,
        typer.Option(help="Require this witness (a file of C2SP vkeys; repeatable)."),
    ] = None,
    cosigned: Annotated[
        list[Path] | None,
        typer.Option(help="Also hold the ledger to this cosigned checkpoint (a witness's note)."),
    ] = None,
) -> None:
    """Recompute the chain and check the signed checkpoints with a key you trust, and the
    cosignatures of the witnesses you require: exit 0 OK, 1 naming the first bad seq, 2 when
    it cannot run, 3 when no trusted key (or a required witness) vouches for it."""
    keys = _trusted_keys(public_key)
    settings = settings_from_env()
    witnesses = witness_cli.trusted_witnesses(witness_key, settings.witness_keys)
    extra = witness_cli.cosigned_notes(cosigned)
    seen: Witnessed | None = None
    if bundle is not None:
        try:
            read = audit.read_bundle(bundle, keys, want=[c.size for c in extra])
            signatures = provenance.check_bundle(bundle)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{bundle}: cannot read the bundle: {exc}") from None
        report = read.report
        if witnesses or extra:
            found = [*read.cosignatures, *extra]
            seen = witness.check(found, witnesses, read.origin, read.heads, report.count)
        where = "they are signed only by the key the bundle itself carries"
    else:

        async def work(ledger: SqlLedger) -> tuple[VerifyReport, Witnessed | None]:
            report = await ledger.verify(keys)
            if not (witnesses or extra):
                return report, None
            origin, count = settings.ledger_origin, report.count
            return report, await witness_store.witnessed(
                ledger.engine, witnesses, origin, count, extra
            )

        report, seen = _run(work)
        signatures = _run(provenance.check_ledger)
        where = "there is no key to check their signatures with (no signing key here)"
    if report.ok and not signatures.ok:  # the chain holds, a publisher's signature does not
        console.print(
            f"BROKEN at seq {signatures.first_bad_seq}: {safe(signatures.problem or '')}",
            highlight=False,
        )
        raise typer.Exit(Exit.BROKEN)
    missing = witness_cli.judge(report, seen, witnesses) if seen is not None else []
    if report.ok and report.origin_verified and missing:
        console.print(
            f"UNWITNESSED: {report.count} entries verify with the operator's key, but no "
            f"cosignature of {', '.join(map(safe, missing))} matches them: a witness you "
            "require has not vouched for this ledger (or its cosignatures were dropped).",
            highlight=False,
        )
        raise typer.Exit(Exit.UNVERIFIED)
    code = _report(report, where)
    if report.ok:
        _signatures(signatures)
    if code is Exit.OK and seen is not None:
        for line in witness_cli.witnessed_lines(seen, report.count):
            console.print(line, highlight=False)
    raise typer.Exit(code)


def _signatures(signatures: provenance.ProvenanceReport) -> None:
    """A line saying how many agency events carry a verified publisher signature, and by which
    keys (the auditor compares them with the agencies' own)."""
    keys = ", ".join(sorted(signatures.keys)) or "none"
    console.print(
        f"signatures: {signatures.signed} events verified against their publisher's key "
        f"({safe(keys)}), {signatures.unsigned} unsigned",
        highlight=False,
    )


@app.command()
def trail(
    alert_id: str,
    source: Annotated[
        str | None,
        typer.Option(help="The unit that raised it, when several units raised alerts of this id."),
    ] = None,
) -> None:
    """One alert's story in order: raised, delivered to whom and why, acknowledged, closed."""

    async def work(ledger: SqlLedger) -> list[tuple[int, str, str]]:
        async with aclosing(audit.trail(ledger, alert_id, source)) as steps:
            return [step async for step in steps]

    try:
        steps = _run(work)
    except audit.AmbiguousAlert as exc:
        raise ConfigError(str(exc)) from None
    if not steps:
        whose = f" from {source}" if source else ""
        raise ConfigError(f"the ledger has nothing about alert {alert_id!r}{whose}")
    for seq, time, what in steps:  # free text: a newline or an escape must not forge a line
        sys.stdout.write(f"#{seq:<6} {printable(time)}  {printable(what)}\n")


@app.command()
def stats(as_json: Annotated[bool, typer.Option("--json", help="JSON rows.")] = False) -> None:
    """Seizure totals by unit, substance and month; a seizure several agencies reported (one
    ``data.case``) counts once, as its first report gives it."""
    rows = _run(audit.seizure_stats)
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table(title="Seizures by unit, substance and month")
    for column in ("unit", "substance", "month", "quantity", "seizures", "reports"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            safe(row["unit"]),
            safe(row["substance"]),
            safe(row["month"]),
            safe(f"{row['quantity']:g} {row['measure']}"),
            str(row["seizures"]),
            str(row["reports"]),
        )
    console.print(table)


@app.command()
def export(
    file: Annotated[Path, typer.Argument(help="Where to write the bundle (JSON lines).")],
    purpose: Annotated[str | None, typer.Option(help=PURPOSE_HELP)] = None,
) -> None:
    """A self-contained bundle — entries, checkpoints, public key — that verifies offline; the
    head is signed first, so that the bundle ends at a signed checkpoint. What it holds of
    persons is recorded in the access record first."""
    why = purpose_of(purpose)

    origin = settings_from_env().ledger_origin

    async def work(ledger: SqlLedger) -> int:
        await record_cli_read(ledger, settings_from_env(), "cli.export", why, Query())
        with file.open("w", encoding="utf-8") as out:
            return await audit.export_bundle(ledger, out, origin)

    try:
        count = _run(work)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    except SignerRefused as exc:  # the database no longer extends what the ledger signed
        typer.echo(f"ledger altered: cannot export: {printable(exc)}", err=True)
        raise typer.Exit(Exit.BROKEN) from None
    console.print(f"wrote {count} entries to {safe(file)}, to a signed checkpoint", highlight=False)


@app.command()
def restore(
    bundle: Annotated[Path, typer.Argument(help="A bundle written by `liaison ledger export`.")],
    public_key: Annotated[
        list[Path] | None,
        typer.Option(help="Trust this public key (PEM; repeatable, a file may hold several)."),
    ] = None,
) -> None:
    """Re-create the ledger from a bundle into an empty database, byte for byte, once it
    verifies against a trusted key (--public-key, LIAISON_TRUSTED_KEYS, else the signing key
    here): exit 0 restored, 1 the bundle is broken, 2 it cannot run (not empty, unreadable,
    unknown fields), 3 no trusted key vouches for it."""
    from services.core.private import data_directory
    from services.ledger.open import open_ledger
    from services.ledger.restore import Restored, RestoreRefused, restore_bundle

    settings = settings_from_env()
    keys = _trusted_keys(public_key) or {}
    if not keys and settings.signing_key_path.exists():
        from services.ledger.signing import load_or_create_signer

        try:
            own = load_or_create_signer(settings.signing_key_path)  # it exists: only loaded
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{settings.signing_key_path}: cannot read: {exc}") from None
        keys = {own.key_id: own.public_key}
    if settings.database_url is None:
        data_directory(settings, create=True)

    async def main() -> Restored:
        ledger = open_ledger(settings, create_key=False)
        try:
            await ledger.create_schema()
            return await restore_bundle(ledger, bundle, keys)
        finally:
            await ledger.close()

    try:
        restored = asyncio.run(main())
    except RestoreRefused as exc:
        typer.echo(f"not restored: {printable(exc)}", err=True)
        code = Exit.BROKEN if exc.broken else Exit.UNVERIFIED if exc.unverified else Exit.USAGE
        raise typer.Exit(code) from None
    except OSError as exc:
        raise ConfigError(f"{bundle}: cannot read: {exc.strerror}") from None
    if restored.ignored_header_fields:
        notes.print(
            f"note: header field(s) {safe(', '.join(restored.ignored_header_fields))} "
            "not stored (information only)",
            highlight=False,
        )
    console.print(
        f"restored {restored.entries} entries and {restored.checkpoints} signed checkpoints "
        f"from {safe(bundle)}; the next entry is seq {restored.entries + 1}",
        highlight=False,
        soft_wrap=True,
    )
    raise typer.Exit(_report(restored.report, "the signing key is not here"))


@app.command("public-key")
def public_key_command() -> None:
    """Print the ledger's public key (PEM), for auditors to keep."""

    async def work(ledger: SqlLedger) -> str:
        if ledger.signer is None:
            raise ConfigError("no signing key yet: the ledger creates it when it first runs")
        return public_pem(ledger.signer.public_key)

    sys.stdout.write(_run(work))


@app.command("cosignature")
def cosignature_command(
    note: Annotated[Path, typer.Argument(help="A cosigned checkpoint (`liaison witness cosign`).")],
) -> None:
    """Store a witness's cosignature made from a bundle: it must verify with the witness key
    of a `witness` principal of the configuration and cosign a head this ledger has."""
    settings = settings_from_env()
    keys = {}
    for principal in read_file_config(settings.config).principals:
        if principal.witness_key is not None:
            try:
                found = witness.parse_vkey(principal.witness_key)
            except ValueError as exc:
                raise ConfigError(f"principal {principal.name!r}: witness_key: {exc}") from None
            keys[found.name] = found
    try:
        text = note.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{note}: cannot read: {exc.strerror}") from None

    async def work(ledger: SqlLedger) -> list[tuple[witness.Cosignature, bool]]:
        return await witness_store.accept(ledger.engine, settings.ledger_origin, text, keys)

    try:
        kept = _run(work)
    except ValueError as exc:  # Mismatch included: the witness saw another history
        raise ConfigError(f"{note}: {exc}") from None
    for c, new in kept:
        state = "stored" if new else "already stored"
        console.print(f"{state}: {safe(c.witness)} cosigned {c.size} entries", highlight=False)
