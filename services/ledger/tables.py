"""The ledger's SQL tables (SQLAlchemy Core), shared by SQLite and PostgreSQL.

Changing them means a new Alembic revision in ``migrations/versions``.
"""

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

entries = Table(
    "ledger_entries",
    metadata,
    Column(
        "seq",
        BigInteger,
        primary_key=True,
        autoincrement=False,
        comment="Gapless position in the chain, from 1.",
    ),
    Column("source", String(300), nullable=False, comment="CloudEvent source."),
    Column("event_id", String(300), nullable=False, comment="CloudEvent id."),
    Column("type", String(64), nullable=False),
    Column("subject", String(300), nullable=True),
    Column("event_time", String(40), nullable=False, comment="CloudEvent time, RFC 3339 UTC."),
    Column("recorded_at", String(40), nullable=False, comment="RFC 3339 UTC, when appended."),
    Column("event", Text, nullable=False, comment="The CloudEvent, canonical JSON."),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    UniqueConstraint("source", "event_id", name="uq_ledger_source_id"),
)

Index("ix_ledger_type_seq", entries.c.type, entries.c.seq)
Index("ix_ledger_subject", entries.c.subject)
Index("ix_ledger_event_time", entries.c.event_time)
Index("ix_ledger_event_id", entries.c.event_id)

checkpoints = Table(
    "ledger_checkpoints",
    metadata,
    Column(
        "size",
        BigInteger,
        primary_key=True,
        autoincrement=False,
        comment="Entries covered: the seq of the head at signing time.",
    ),
    Column("head_hash", String(64), nullable=False),
    Column("signed_at", String(40), nullable=False, comment="RFC 3339 UTC."),
    Column("key_id", String(16), nullable=False, comment="First 16 hex of SHA-256(public key)."),
    Column("signature", String(128), nullable=False, comment="Ed25519 signature, hex."),
    Column(
        "version",
        Integer,
        nullable=False,
        server_default="1",
        comment="1: liaison-ledger-checkpoint/v1; 2: chained, with its policy.",
    ),
    Column("prev", String(64), nullable=True, comment="v2: SHA-256 of the previous one's message."),
    Column("every", BigInteger, nullable=True, comment="v2: CHECKPOINT_EVERY when signed."),
    Column(
        "interval_ms",
        BigInteger,
        nullable=True,
        comment="v2: CHECKPOINT_INTERVAL when signed, milliseconds.",
    ),
    Column(
        "index_hash",
        String(64),
        nullable=True,
        comment="v2: SHA-256 of the indexed columns of the entries it newly covers.",
    ),
)

access_entries = Table(
    "access_entries",
    metadata,
    Column(
        "seq",
        BigInteger,
        primary_key=True,
        autoincrement=False,
        comment="Gapless position in the access chain, from 1.",
    ),
    Column("record_id", String(64), nullable=False, comment="The record's id (uuid hex)."),
    Column("at", String(40), nullable=False, comment="When the data was read, RFC 3339 UTC."),
    Column("principal", String(200), nullable=False),
    Column("recorded_at", String(40), nullable=False, comment="RFC 3339 UTC, when appended."),
    Column("record", Text, nullable=False, comment="The access record, canonical JSON."),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    UniqueConstraint("record_id", name="uq_access_record_id"),
)
"""The access record (services/core/access.py): its own hash chain, the ledger's formula."""

access_persons = Table(
    "access_persons",
    metadata,
    Column("person", String(64), nullable=False, comment="Keyed digest of a document number."),
    Column("seq", BigInteger, nullable=False, comment="The access entry that shows them."),
)
"""Which access entries show which person: the report's index (the chained record says it
too, and the report checks it there)."""

Index("ix_access_persons", access_persons.c.person, access_persons.c.seq)
