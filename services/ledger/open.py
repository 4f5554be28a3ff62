"""Opening the ledger from the settings, for the service and the CLI alike."""

from __future__ import annotations

from services.core.config import ConfigError
from services.core.private import data_directory, describe_data_dir, private_sqlite, sqlite_path
from services.core.settings import Settings
from services.ledger.engine import create_engine
from services.ledger.signing import load_or_create_signer
from services.ledger.store import CheckpointPolicy, SqlLedger


def open_existing_ledger(settings: Settings) -> SqlLedger:
    """The ledger for the auditor's commands, which never create one (nor a data directory).

    Run where there is none, they say which ``LIAISON_DATA_DIR`` (or
    ``LIAISON_DATABASE_URL``) they looked at, instead of SQLite's "unable to open
    database file" or a fresh empty ledger that verifies.
    """
    if settings.database_url is None:
        file = data_directory(settings, create=False) / "ledger.sqlite3"
        if not file.is_file():
            raise ConfigError(
                f"no ledger: {describe_data_dir(settings)} has no ledger.sqlite3; "
                "run this where `liaison up` keeps its data, or set LIAISON_DATA_DIR"
            )
    elif (file_named := sqlite_path(settings.database_url)) and not file_named.is_file():
        raise ConfigError(
            f"no ledger: LIAISON_DATABASE_URL names {file_named}, which does not exist"
        )
    return open_ledger(settings, create_key=False, create=False)


def open_ledger(settings: Settings, *, create_key: bool = True, create: bool = True) -> SqlLedger:
    """The configured ledger; its signing key is created on first use unless ``create_key`` is off.

    A SQLite file (in the data directory or named by ``LIAISON_DATABASE_URL``)
    is created 0600 before SQLite opens it, so its WAL and shared-memory files
    are 0600 too; one left readable by an earlier version is tightened.
    """
    private_sqlite(settings.effective_database_url, create=create)
    path = settings.signing_key_path
    signer = load_or_create_signer(path) if create_key or path.exists() else None
    policy = CheckpointPolicy(
        every=settings.checkpoint_every, interval=settings.checkpoint_interval.total_seconds()
    )
    return SqlLedger(create_engine(settings.effective_database_url), signer, policy)
