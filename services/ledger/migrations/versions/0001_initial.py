"""The ledger's first schema: chained entries and signed checkpoints.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "ledger_entries",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("source", sa.String(300), nullable=False),
        sa.Column("event_id", sa.String(300), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(300), nullable=True),
        sa.Column("event_time", sa.String(40), nullable=False),
        sa.Column("recorded_at", sa.String(40), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("source", "event_id", name="uq_ledger_source_id"),
    )
    op.create_index("ix_ledger_type_seq", "ledger_entries", ["type", "seq"])
    op.create_index("ix_ledger_subject", "ledger_entries", ["subject"])
    op.create_index("ix_ledger_event_time", "ledger_entries", ["event_time"])
    op.create_table(
        "ledger_checkpoints",
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("signed_at", sa.String(40), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("size"),
    )


def downgrade() -> None:
    op.drop_table("ledger_checkpoints")
    op.drop_table("ledger_entries")
