"""Index ledger_entries.event_id: the duplicate check looks events up by id.

The unique key is (source, event_id); without this index both SQLite and
PostgreSQL scanned the whole key per appended batch (46 ms at 100k rows,
growing with the ledger — bench/results/ledger-100000.md).

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_index("ix_ledger_event_id", "ledger_entries", ["event_id"])


def downgrade() -> None:
    op.drop_index("ix_ledger_event_id", table_name="ledger_entries")
