"""Signed ingest next to unsigned, in the same run: what verifying publishers' signatures costs.

``python -m bench signed [--events N] [--senders K] [--out FILE | --no-out]`` starts an embedded
server and one ``liaison serve api`` process with two publishers of the same units:
``plain`` (no keys) and ``signer`` (``signatures: required``, one Ed25519 key). It POSTs N
unsigned ``seizure.reported`` events as ``plain``, then N others signed beforehand (the
publisher's cost, not the exchange's) as ``signer``, in batches of 1000 from K senders, and
reports events/s and the CPU per event of the ingest process for each, with the in-process
raw costs of what verification adds per event: RFC 8785 of ``data``, Ed25519 verify.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from redis.asyncio import Redis

from bench.ingest import BATCH, _cpu, api_process, post_batches
from bench.support.payloads import seizure
from bench.support.procs import child_matching
from services.core import dsse, streams
from services.core.auth import token_digest
from services.core.jcs import canonical
from services.core.keyring import KeyTerms, Registry
from services.core.redis_server import EmbeddedRedis
from services.entrypoints.keys_cli import sign_event

RESULTS = Path(__file__).parent / "results" / "signed-latest.md"
KEYID = "signer/k1"


def _events(n: int, tag: str) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    events = []
    for i in range(n):
        event = seizure(i, now)
        event["id"] = f"{tag}-{i:08d}"
        events.append(event)
    return events


@asynccontextmanager
async def two_publishers(
    redis_url: str, workdir: Path, units: Sequence[str], key: Ed25519PrivateKey
) -> AsyncIterator[tuple[str, str, str]]:
    """``liaison serve api`` with ``plain`` and ``signer``; yields (URL, their tokens)."""
    plain, signer = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    principals: list[dict[str, Any]] = [
        {"name": "plain", "role": "publisher", "token_sha256": token_digest(plain),
         "units": list(units)},
        {"name": "signer", "role": "publisher", "token_sha256": token_digest(signer),
         "units": list(units), "signatures": "required",
         "keys": [{"id": "k1", "public_key": dsse.raw_b64(key.public_key())}]},
    ]  # fmt: skip
    async with api_process(redis_url, workdir, principals) as base:
        yield base, plain, signer


def _bodies(events: list[dict[str, Any]]) -> list[bytes]:
    return [
        json.dumps(events[i : i + BATCH], separators=(",", ":")).encode()
        for i in range(0, len(events), BATCH)
    ]


def raw_costs(signed: Sequence[dict[str, Any]], key: Ed25519PrivateKey) -> dict[str, float]:
    """CPU microseconds per event (process time: a busy machine does not inflate it), in this process: JCS of data, Ed25519 verify, and the
    whole check ingest makes (envelope, JCS, digests, verify)."""
    sample = list(signed[:2000])
    terms = KeyTerms(KEYID, key.public_key().public_bytes_raw(), publisher="signer",
                     units=frozenset(e["source"][7:] for e in sample))  # fmt: skip
    registry = Registry({KEYID: terms})
    now = datetime.now(UTC)
    public = key.public_key()
    message, signature = b"x" * 200, key.sign(b"x" * 200)
    out = {}
    start = time.process_time()
    for event in sample:
        canonical(event["data"])
    out["RFC 8785 (JCS) of data"] = (time.process_time() - start) / len(sample) * 1e6
    start = time.process_time()
    for _ in sample:
        public.verify(signature, message)
    out["Ed25519 verify"] = (time.process_time() - start) / len(sample) * 1e6
    start = time.process_time()
    for event in sample:
        registry.check(event, now, "signer")
    out["whole check (envelope, JCS, digests, verify)"] = (
        (time.process_time() - start) / len(sample) * 1e6
    )
    return out


async def run(events: int, senders: int) -> str:
    """Both phases; the Markdown report."""
    key = Ed25519PrivateKey.generate()
    plain_events = _events(events, "plain")
    started = time.process_time()
    signed_events = [sign_event(e, key, KEYID) for e in _events(events, "signed")]
    sign_us = (time.process_time() - started) / events * 1e6
    units = sorted({e["source"].removeprefix("/units/") for e in plain_events})
    costs = raw_costs(signed_events, key)
    rows = []
    with (
        tempfile.TemporaryDirectory(prefix="liaison-bench-signed-") as tmp,
        EmbeddedRedis(Path(tmp) / "redis") as server,
    ):
        redis = Redis.from_url(server.url)
        try:
            async with two_publishers(server.url, Path(tmp), units, key) as (base, plain, signer):
                pid = child_matching("serve api")
                for name, token, batch in (
                    ("unsigned", plain, plain_events),
                    ("signed, verified", signer, signed_events),
                ):
                    clock: list[Any] = []

                    def start(clock: list[Any] = clock) -> None:
                        clock.append(_cpu(pid, None))

                    elapsed = await post_batches(base, token, _bodies(batch), senders, start)
                    (before, _), (after, _) = clock[0], _cpu(pid, None)
                    cpu = sum(after.values()) - sum(before.get(p, 0.0) for p in after)
                    rows.append((name, events / elapsed, cpu / events * 1e6))
            stored = await redis.xlen(streams.SEIZURES)
        finally:
            await redis.aclose()
    if stored != 2 * events:
        raise RuntimeError(f"{stored} events in the stream for {2 * events} accepted")
    lines = [
        f"# Signed ingest — {events:,} events each, same run",
        "",
        f"- **host**: {os.uname().nodename}, {os.cpu_count()} CPUs; "
        f"{BATCH} events per request, {senders} senders; `liaison serve api` in its own process",
        "",
        "| events | events/s | CPU per event (ingest process and its workers) |",
        "|---|---:|---:|",
        *[f"| {name} | {rate:,.0f} | {cpu:.1f} µs |" for name, rate, cpu in rows],
        "",
        "| raw cost in this process (CPU time) | µs per event |",
        "|---|---:|",
        *[f"| {name} | {us:.1f} |" for name, us in costs.items()],
        f"| signing by the publisher (`liaison sign`'s function: canonical form, salts, JCS, Ed25519) | {sign_us:.1f} |",
        "",
    ]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: run, print the table, write it to ``--out``."""
    parser = argparse.ArgumentParser(prog="python -m bench signed", description=__doc__)
    parser.add_argument("--events", type=int, default=20_000, help="events per phase (20000)")
    parser.add_argument("--senders", type=int, default=4, help="requests in flight (default 4)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"default {RESULTS}")
    parser.add_argument("--no-out", action="store_true", help="print only")
    args = parser.parse_args(argv)
    text = asyncio.run(run(args.events, args.senders))
    sys.stdout.write(text)
    if not args.no_out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        print(f"\nwritten to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
