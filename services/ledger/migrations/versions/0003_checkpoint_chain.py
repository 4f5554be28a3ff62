"""Checkpoints chain (liaison-ledger-checkpoint/v2): version, prev, the signing policy, and the
digest of the indexed columns they cover.

Existing rows are version 1 checkpoints: they keep verifying as before, and
the first version 2 checkpoint names the last of them as ``prev``.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    with op.batch_alter_table("ledger_checkpoints") as batch:
        batch.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("prev", sa.String(64), nullable=True))
        batch.add_column(sa.Column("every", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("interval_ms", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("index_hash", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ledger_checkpoints") as batch:
        for column in ("index_hash", "interval_ms", "every", "prev", "version"):
            batch.drop_column(column)
