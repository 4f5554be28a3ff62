"""Witness cosignatures of checkpoints (C2SP tlog-cosignature, Ed25519): one row per witness
and size, kept as the witness signed it (services/ledger/witness.py).

Revision ID: 0004_witness
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_witness"
down_revision = "0003"


def upgrade() -> None:
    op.create_table(
        "ledger_cosignatures",
        sa.Column("witness", sa.String(200), primary_key=True),
        sa.Column("size", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("signature", sa.String(200), nullable=False),
        sa.Column("received_at", sa.String(40), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ledger_cosignatures")
