"""The access record: every read of personal data, in a hash chain of its own (issue 20).

Revision ID: 0005_access
Revises: 0004_witness
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_access"
down_revision = "0004_witness"


def upgrade() -> None:
    op.create_table(
        "access_entries",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("record_id", sa.String(64), nullable=False),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("principal", sa.String(200), nullable=False),
        sa.Column("recorded_at", sa.String(40), nullable=False),
        sa.Column("record", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("record_id", name="uq_access_record_id"),
    )
    op.create_table(
        "access_persons",
        sa.Column("person", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_access_persons", "access_persons", ["person", "seq"])


def downgrade() -> None:
    op.drop_index("ix_access_persons", "access_persons")
    op.drop_table("access_persons")
    op.drop_table("access_entries")
