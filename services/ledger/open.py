"""Opening the ledger from the settings, for the service and the CLI alike."""

from __future__ import annotations

from services.config import Settings
from services.ledger.signing import load_or_create_signer
from services.ledger.store import CheckpointPolicy, SqlLedger, create_engine


def open_ledger(settings: Settings, *, create_key: bool = True) -> SqlLedger:
    """The configured ledger; its signing key is created on first use unless ``create_key`` is off."""
    path = settings.signing_key_path
    signer = load_or_create_signer(path) if create_key or path.exists() else None
    policy = CheckpointPolicy(
        every=settings.checkpoint_every, interval=settings.checkpoint_interval.total_seconds()
    )
    return SqlLedger(create_engine(settings.effective_database_url), signer, policy)
