"""The cosignatures the ledger keeps: witnesses hand them in (``POST /v1/ledger/cosignatures``,
``liaison ledger cosignature``), verification and export read them.

Stored as the witness signed them, one row per witness and size; the ledger checks each
against the witness's configured key and its own chain before keeping it, but a verifier
trusts none of that and checks them again (:func:`services.ledger.witness.check`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime

from sqlalchemy import BigInteger, Column, String, Table, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ledger import tables, witness
from services.ledger.checkpoints import Checkpoint
from services.ledger.records import utc_text
from services.ledger.witness import Cosignature, WitnessKey

cosignatures = Table(
    "ledger_cosignatures",
    tables.metadata,
    Column("witness", String(200), primary_key=True, comment="The witness's C2SP key name."),
    Column("size", BigInteger, primary_key=True, autoincrement=False, comment="Entries cosigned."),
    Column("head_hash", String(64), nullable=False, comment="The head it cosigned, hex."),
    Column("timestamp", BigInteger, nullable=False, comment="When it cosigned, POSIX seconds."),
    Column("signature", String(200), nullable=False, comment="base64(key id ‖ time ‖ Ed25519)."),
    Column("received_at", String(40), nullable=False, comment="RFC 3339 UTC, when stored."),
)


async def load(engine: AsyncEngine, upto: int | None = None) -> list[Cosignature]:
    """Every stored cosignature (of at most ``upto`` entries), by size then witness."""
    c = cosignatures
    query = select(c.c.witness, c.c.size, c.c.head_hash, c.c.timestamp, c.c.signature)
    if upto is not None:
        query = query.where(c.c.size <= upto)
    async with engine.connect() as conn:
        rows = (await conn.execute(query.order_by(c.c.size, c.c.witness))).all()
    return [Cosignature(str(w), int(s), str(h), int(t), str(sig)) for w, s, h, t, sig in rows]


async def store(engine: AsyncEngine, cosignature: Cosignature) -> bool:
    """Keep ``cosignature``; False if this witness's cosignature of that size is kept already."""
    row = cosignature.to_dict() | {"received_at": utc_text(datetime.now(UTC))}
    try:
        async with engine.begin() as conn:
            await conn.execute(cosignatures.insert().values(**row))
    except IntegrityError:
        return False
    return True


async def heads_at(engine: AsyncEngine, sizes: Collection[int]) -> dict[int, str]:
    """The stored hash of the entries at these seqs (those the ledger has)."""
    e = tables.entries
    found: dict[int, str] = {}
    wanted = sorted(set(sizes))
    async with engine.connect() as conn:
        for i in range(0, len(wanted), 500):
            query = select(e.c.seq, e.c.hash).where(e.c.seq.in_(wanted[i : i + 500]))
            found |= {int(seq): str(digest) for seq, digest in (await conn.execute(query)).all()}
    return found


async def latest_checkpoint(engine: AsyncEngine) -> Checkpoint | None:
    """The last signed checkpoint, if any (what a witness is asked to cosign)."""
    c = tables.checkpoints
    async with engine.connect() as conn:
        row = (await conn.execute(select(c).order_by(c.c.size.desc()).limit(1))).first()
    return Checkpoint.from_dict(row._mapping) if row is not None else None


class Mismatch(ValueError):
    """A cosignature of a head this ledger does not have (HTTP 409)."""


async def accept(
    engine: AsyncEngine, origin: str, note: str, keys: Mapping[str, WitnessKey]
) -> list[tuple[Cosignature, bool]]:
    """Check a cosigned checkpoint note and keep its cosignatures by the witnesses in ``keys``.

    Each must be over this ledger's ``origin``, verify with its witness's key, and cosign a
    head this ledger has at that size (:class:`Mismatch` otherwise: the witness saw another
    history, or another ledger). Returns each kept cosignature and whether it was new.
    ValueError (malformed, unknown witness, bad signature) says why.
    """
    claimed, found = witness.parse_note(note)
    if claimed != origin:
        raise ValueError(f"the note is about ledger {claimed!r}, this one is {origin!r}")
    ours = [c for c in found if c.witness in keys]
    if not ours:
        raise ValueError("the note carries no cosignature by a witness configured here")
    heads = await heads_at(engine, {c.size for c in ours})
    kept = []
    for c in ours:
        if not c.valid(origin, keys[c.witness]):
            raise ValueError(f"the cosignature of {c.witness} does not verify with its key")
        if heads.get(c.size) != c.head_hash:
            raise Mismatch(
                f"{c.witness} cosigned a head this ledger does not have at {c.size} entries"
            )
        kept.append((c, await store(engine, c)))
    return kept


async def witnessed(
    engine: AsyncEngine,
    keys: Mapping[str, WitnessKey],
    origin: str,
    count: int,
    extra: Sequence[Cosignature] = (),
) -> witness.Witnessed:
    """The stored cosignatures (and ``extra`` ones, e.g. kept by the witness) checked against
    the database's entries; ``count``: the entries verification found."""
    found = [*await load(engine), *extra]
    heads = await heads_at(engine, {c.size for c in found if c.size <= count})
    return witness.check(found, keys, origin, heads, count)
