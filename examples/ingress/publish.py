"""Append CloudEvents to a publisher's Redis ingress stream, as an agency system would.

    python examples/ingress/publish.py REDIS_URL PUBLISHER FILE [FILE ...]
    python examples/ingress/publish.py redis://uz-customs:PASSWORD@valkey:6379/0 uz-customs \
        examples/events/alert.raised.json

Each FILE is one CloudEvent (JSON). It is appended to ``{liaison}:stream:ingress:<PUBLISHER>``
as one entry whose field ``__data__`` holds the event's JSON; ingest validates it for that
publisher's units and forwards it to its canonical stream, or puts it on the dead-letter
stream with the reason (``liaison dlq list``). With ``--fsync`` it then waits until the server
has the entries on disk (``WAITAOF``), for agencies whose server fsyncs once a second.

Connect as the agency's own ACL user (the ``agency`` line of deploy/users.acl): it may append
to its own ingress stream and nowhere else. The stream, the field and the event schemas are
described in schemas/asyncapi.json (served at /asyncapi.json) and docs/redis-streams.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from redis import Redis

HASH_TAG = "{liaison}"  # literally, braces included: every key of Liaison Exchange shares it


def ingress_stream(publisher: str) -> str:
    """The publisher's own ingress stream."""
    return f"{HASH_TAG}:stream:ingress:{publisher}"


def main(argv: Sequence[str] | None = None) -> int:
    """Append each file's event; print the stream and entry id of each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("redis_url", help="redis://USER:PASSWORD@HOST:PORT/0 (or unix://…)")
    parser.add_argument("publisher", help="the agency's publisher name in the configuration")
    parser.add_argument("files", nargs="+", type=Path, help="CloudEvent JSON files")
    parser.add_argument("--fsync", action="store_true", help="wait for the server's fsync")
    args = parser.parse_args(argv)
    stream = ingress_stream(args.publisher)
    client = Redis.from_url(args.redis_url, socket_timeout=10)
    try:
        for path in args.files:
            event = json.loads(path.read_text(encoding="utf-8"))  # must at least be JSON
            entry = client.xadd(stream, {"__data__": json.dumps(event, ensure_ascii=False)})
            print(f"{stream} {entry.decode() if isinstance(entry, bytes) else entry} {path}")
        if args.fsync and client.waitaof(1, 0, 5000)[0] < 1:
            print("the server did not confirm an fsync within 5 s: send again", file=sys.stderr)
            return 1
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
