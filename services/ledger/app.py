"""The ledger service in a process: every canonical stream into the SQL ledger, the signing of
its checkpoints, and the ledger the HTTP API reads."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from faststream.redis import RedisBroker
from redis.asyncio import Redis

from services.core import streams
from services.core.bus import Entry, RedisDeadLetters, Unavailable
from services.core.loops import forever, log_failure
from services.core.metrics import LEDGER_APPENDED, LEDGER_DUPLICATES, NO_METRICS, Metrics
from services.core.streaming import Background, GroupOptions, subscribe_pipelined
from services.core.wiring import Wiring, consumer_name
from services.ledger.access_feed import ACCESS_OPTIONS, prepare_access
from services.ledger.access_store import AccessStore
from services.ledger.handlers import append_prepared, prepare_entries
from services.ledger.open import open_ledger
from services.ledger.provenance import record_registry
from services.ledger.records import Record
from services.ledger.store import SqlLedger

log = logging.getLogger(__name__)

LEDGER_OPTIONS = GroupOptions(max_records=500, queue_batches=8)
"""Up to 8 batches of 500 read ahead of the commit: one transaction takes what is queued."""


def register_ledger(
    broker: RedisBroker,
    redis: Redis,
    ledger: SqlLedger,
    consumer: str,
    options: GroupOptions = LEDGER_OPTIONS,
    metrics: Metrics = NO_METRICS,
) -> list[Background]:
    """Subscribe the ledger's consumer group to every canonical stream.

    Returns what to run beside the broker: the group commit (the one writer
    of the chain in this process) and a claimer per stream.
    """
    dead = RedisDeadLetters(redis)

    async def prepare(entries: Sequence[Entry]) -> list[Record]:
        return await prepare_entries(entries, dead)

    async def commit(batches: Sequence[list[Record]]) -> None:
        result = await append_prepared(batches, ledger)
        metrics.inc(LEDGER_APPENDED, len(result.appended))
        metrics.inc(LEDGER_DUPLICATES, result.duplicates)

    return subscribe_pipelined(
        broker,
        redis,
        streams=streams.CANONICAL_STREAMS,
        group=streams.LEDGER_GROUP,
        consumer=consumer,
        prepare=prepare,
        commit=commit,
        options=options,
        metrics=metrics,
    )


def register_access(
    broker: RedisBroker,
    redis: Redis,
    store: AccessStore,
    consumer: str,
    options: GroupOptions = ACCESS_OPTIONS,
    metrics: Metrics = NO_METRICS,
) -> list[Background]:
    """Subscribe the ledger's group to the access stream; returns the writer and the claimer."""
    dead = RedisDeadLetters(redis)

    async def prepare(entries: Sequence[Entry]) -> list[dict[str, Any]]:
        return await prepare_access(entries, dead)

    async def commit(batches: Sequence[list[dict[str, Any]]]) -> None:
        await store.append([record for batch in batches for record in batch])

    return subscribe_pipelined(
        broker,
        redis,
        streams=[streams.ACCESS],
        group=streams.LEDGER_GROUP,
        consumer=consumer,
        prepare=prepare,
        commit=commit,
        options=options,
        metrics=metrics,
    )


class LedgerService:
    """The ledger's part of a process: the database (opened where the ledger runs, and where
    the HTTP API serves its endpoints), its readers and group commit, checkpoint signing."""

    def __init__(self, wiring: Wiring, ledger: SqlLedger) -> None:
        self._wiring, self.ledger = wiring, ledger
        self.access = AccessStore(ledger.engine)
        """The access record's chain, in the ledger's database."""

    @classmethod
    async def open(cls, wiring: Wiring, *, runs: bool) -> LedgerService:
        """Open (and migrate) the ledger; where the process ``runs`` the ledger, its signing key
        is created on first use and a last checkpoint is signed once nothing appends any more."""
        ledger = open_ledger(wiring.settings, create_key=runs)
        wiring.stack.push_async_callback(ledger.close)
        await ledger.create_schema()
        service = cls(wiring, ledger)
        if runs:
            await (
                service._record_registry()
            )  # unwound after the broker stopped (registered before it starts)
            wiring.stack.push_async_callback(service._final_checkpoint)
        return service

    @property
    def trimmed(self) -> tuple[str, ...]:
        """The canonical streams and the access stream."""
        return (*streams.CANONICAL_STREAMS, streams.ACCESS)

    def subscribe(self, broker: RedisBroker) -> list[Background]:
        """The readers of every canonical stream, their claimers and the group commit; the
        access stream's reader, claimer and writer."""
        w = self._wiring
        options = w.group_options(LEDGER_OPTIONS)
        consumer = consumer_name("ledger")
        return [
            *register_ledger(broker, w.redis, self.ledger, consumer, options, w.metrics),
            *register_access(
                broker, w.redis, self.access, consumer, w.group_options(ACCESS_OPTIONS), w.metrics
            ),
        ]

    async def start(self) -> None:
        """Sign the head when entries have waited ``checkpoint_interval``, even if no more come."""
        self._wiring.start_task(self._sign_checkpoints(), "checkpoints")

    async def checks(self) -> dict[str, bool]:
        """The database takes writes."""
        return {"database": await self.ledger.ready()}

    async def _record_registry(self) -> None:
        """The key registry into the chain before any event it vouches for is consumed
        (docs/provenance.md); a refusing signer logs its reason and the next start retries."""
        try:
            await record_registry(self.ledger, self._wiring.config.principals)
        except Unavailable as exc:
            log.error("could not record the key registry in the ledger: %s", exc)

    async def _sign_checkpoints(self) -> None:
        pause = max(self._wiring.settings.checkpoint_interval.total_seconds() / 2, 0.05)
        await forever(self.ledger.checkpoint_if_due, pause, "signing a ledger checkpoint")

    async def _final_checkpoint(self) -> None:
        try:
            await self.ledger.checkpoint_if_due(force=True)
        except Exception:
            log_failure(log, "could not sign the final ledger checkpoint")
