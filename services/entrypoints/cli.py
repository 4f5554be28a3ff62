"""The ``liaison`` command (docs/cli.md)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from schemas.events import CloudEvent
from schemas.topology import TopologyError
from services.core import log_hygiene, terminal
from services.core.config import ConfigError, read_file_config, resolve_topology
from services.core.private import PRIVATE_UMASK
from services.core.redis_server import EmbeddedServerError
from services.core.settings import Settings, settings_from_env
from services.entrypoints import keys_cli
from services.ingest import cli as ingest_cli
from services.ledger import access_cli, witness_cli
from services.ledger import cli as ledger_cli
from services.ledger.store import UnreadableEntry

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Liaison Exchange.",
)
app.add_typer(ledger_cli.app, name="ledger")
app.add_typer(witness_cli.app, name="witness")
app.add_typer(access_cli.app, name="access")
app.add_typer(ingest_cli.dlq_app, name="dlq")
app.command("import")(ingest_cli.import_command)
app.add_typer(keys_cli.keys_app, name="keys")
app.command("sign")(keys_cli.sign_command)
console = terminal.console()
errors = terminal.console(stderr=True)


def _settings() -> Settings:
    return settings_from_env()


@app.command()
def demo(
    data_dir: Annotated[Path | None, typer.Option(help="Keep the demo's data here.")] = None,
    serve: Annotated[
        bool,
        typer.Option(
            "--serve",
            help="Then keep running, with the web console, its address and sign-in tokens "
            "printed, until Ctrl-C (`make demo` does this in a terminal).",
        ),
    ] = False,
) -> None:
    """Play the seed scenario end to end on embedded defaults."""
    from services.entrypoints.demo import run_demo

    with tempfile.TemporaryDirectory(prefix="liaison-demo-") as tmp:
        ok = asyncio.run(run_demo(data_dir or Path(tmp), console, serve=serve))
    raise typer.Exit(0 if ok else 1)


@app.command()
def up() -> None:
    """Run ingest, ledger, notifier and the HTTP API until SIGINT/SIGTERM."""
    from services.entrypoints.runner import run_services

    # The webhook worker gets a process (a core) of its own when there is a second core.
    apart = (os.cpu_count() or 1) > 1
    services = ("ingest", "ledger", "notifier")
    asyncio.run(run_services(_settings(), services, console, http=True, webhooks_apart=apart))


SERVABLE = ("api", "ingest", "ledger", "notifier")
"""What ``liaison serve`` runs: the HTTP API (and the web console), or one service's consumers."""


@app.command()
def serve(service: Annotated[str, typer.Argument(help="api, ingest, ledger or notifier")]) -> None:
    """Run one part (scaled deployments): api serves the HTTP API and the web console (stateless:
    run several behind a load balancer); ingest, ledger and notifier consume their streams."""
    from services.entrypoints.runner import run_services

    if service not in SERVABLE:
        raise ConfigError(f"unknown service {service!r}: choose {', '.join(SERVABLE)}")
    if service == "api":
        asyncio.run(run_services(_settings(), (), console, http=True))
    else:
        asyncio.run(run_services(_settings(), (service,), console, http=False))


@app.command()
def route(
    file: Annotated[Path, typer.Argument(help="An alert.raised CloudEvent (JSON).")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    operation: Annotated[
        Path | None,
        typer.Option(
            "--operation", help="The operation.opened event of the alert's operation (JSON)."
        ),
    ] = None,
) -> None:
    """Dry run: who would receive this alert, why, and with which view."""
    from services.notifier.cli import print_route

    settings = _settings()
    topology = resolve_topology(read_file_config(settings.config))
    events = []
    for path in (file, operation):
        if path is None:
            continue
        try:
            events.append(CloudEvent.from_json(path.read_bytes()))
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    print_route(events[0], topology, console, as_json=as_json, operation=events[1:])


@app.command()
def inbox(
    unit: str,
    as_json: Annotated[
        bool, typer.Option("--json", help="The inbox document, for scripts.")
    ] = False,
) -> None:
    """A unit's alerts, newest first, and a coordinator's escalation notices."""
    from services.notifier.cli import show_inbox

    asyncio.run(show_inbox(_settings(), unit, console, as_json=as_json))


@app.command()
def ack(
    unit: str,
    alert_id: str,
    officer: Annotated[
        str | None, typer.Option(help="Your name, recorded beside cli:<OS user>.")
    ] = None,
    note: Annotated[str | None, typer.Option(help="A remark for the record.")] = None,
    source: Annotated[
        str | None,
        typer.Option(help="The unit that raised it, when UNIT got alerts of this id from several."),
    ] = None,
) -> None:
    """Acknowledge one alert for UNIT; recorded as cli:<OS user> (and --officer as typed)."""
    from services.notifier.cli import acknowledge_alert

    asyncio.run(acknowledge_alert(_settings(), unit, alert_id, officer, note, console, source))


def _error(kind: str, message: object) -> None:
    """One line on stderr, whatever the message quotes (a unit name, a file's text)."""
    errors.print(f"[red]{kind}:[/] {terminal.safe(message)}", soft_wrap=True, highlight=False)


def main() -> None:
    """Entry point: user errors are one clear line on stderr, never a traceback."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Everything this process writes (the ledger and its WAL, the signing key, exported
    # bundles, the embedded server's files) holds personal data or credentials: owner only.
    os.umask(PRIVATE_UMASK)
    log_hygiene.install()  # what callers sent is logged with its control characters escaped
    try:
        app()
    except (ConfigError, TopologyError, EmbeddedServerError) as exc:
        _error("error", exc)
        sys.exit(2)
    except UnreadableEntry as exc:  # the ledger was tampered with: the verdict is verify's
        _error("ledger altered", exc)
        sys.exit(1)
    except ValidationError as exc:
        for err in exc.errors(include_url=False)[:10]:
            where = ".".join(str(p) for p in err["loc"]) or "(event)"
            _error("invalid", f"{where}: {err['msg']}")
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
