"""The Redis side of the public interface as an AsyncAPI 3.0 document.

What OpenAPI is to the HTTP API, this is to the streams that agencies with Redis access write
to and read from: the per-publisher ingress streams, the canonical streams, the receipts and
the dead letters. FastStream generates the skeleton — a channel and an operation per
subscriber (each consumer group on its stream) and per publisher (who appends where) — from a
broker that declares them exactly as the services register them; this module completes it
with what FastStream cannot know: the event schemas of ``schemas/json/`` (embedded, so the
document stands alone), the channel parameters, the server and its access.

Served at ``/asyncapi.json`` (to anyone, like ``/openapi.json``) and committed as
``schemas/asyncapi.json``; a test proves the committed file current and another that a running
runtime subscribes to exactly the streams described here (``docs/redis-streams.md``).

    python -m services.core.asyncapi          # write schemas/asyncapi.json (``make schemas``)
    python -m services.core.asyncapi --check  # exit 1 if it is not current
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from faststream.redis import RedisBroker, StreamSub
from faststream.specification import AsyncAPI

from schemas.events import DATA_MODELS
from schemas.export import event_schema
from schemas.vocabulary import AGENCY_TYPES, LEDGER_TYPES, SYSTEM_TYPES, EventType
from services.core import streams

VERSION = "0.1.0"
"""The interface's version, as in the OpenAPI document."""
PATH = Path(__file__).resolve().parents[2] / "schemas" / "asyncapi.json"
PUBLISHER = "{publisher}"
"""The ingress streams' parameter: the name of the agency's publisher principal."""

_CANONICAL_TYPES: dict[str, tuple[EventType, ...]] = {
    streams.SEIZURES: (EventType.SEIZURE_REPORTED,),
    streams.ALERTS: tuple(sorted(AGENCY_TYPES - {EventType.SEIZURE_REPORTED})),
    streams.RECEIPTS: tuple(sorted(SYSTEM_TYPES - LEDGER_TYPES)),
}
_NAMES = {
    streams.SEIZURES: "seizures",
    streams.ALERTS: "alerts",
    streams.RECEIPTS: "receipts",
    streams.DEAD_LETTERS: "dead-letters",
    streams.ACCESS: "access",
    streams.ingress_stream(PUBLISHER): "ingress",
}
_DEAD_LETTER = "dead-letter"
_ACCESS_RECORD = "access-record"

_ENTRY = (
    "One stream entry per event: field `__data__` holds the CloudEvent as canonical JSON "
    "(compact, sorted keys, no null members, UTF-8)."
)
_GROUPS = {
    streams.INGEST_GROUP: "Ingest validates each entry as `POST /v1/events` would — for the "
    "publisher's own units only — and appends it to its canonical stream (idempotent on "
    "`(source, id)`), or puts it on the dead-letter stream with the reason; it acknowledges "
    "the entry only after that.",
    streams.LEDGER_GROUP: "The ledger appends every event once (by `(source, id)`) to the "
    "hash chain, and acknowledges an entry only after its transaction committed.",
    streams.NOTIFIER_GROUP: "The notifier routes each alert and writes the recipients' "
    "inboxes (updates, cancellations and closures to everyone who received the alert), "
    "then acknowledges.",
}
_PUBLISHED_BY = {
    streams.SEIZURES: "Ingest (HTTP, files, the ingress streams) appends each validated "
    "`seizure.reported` once per `(source, id)`.",
    streams.ALERTS: "Ingest appends each validated alert event once per `(source, id)`.",
    streams.RECEIPTS: "The notifier appends what the system says about alerts: deliveries, "
    "acknowledgements, escalations, webhook failures (sources `/liaison/…`).",
    streams.DEAD_LETTERS: "Every service appends what it could not handle, with the reason; "
    "`liaison dlq list` shows them and `liaison dlq retry ID` re-drives one.",
    streams.ACCESS: "The API appends one access record per read of personal data, before it "
    "answers; the ledger appends them to the access chain (`docs/ledger.md`).",
}


def subscriptions() -> dict[str, tuple[str, ...]]:
    """Each stream the services' brokers read (the ingress as its address template) → the
    consumer groups reading it. The webhook jobs' stream is internal (its worker is no broker
    subscriber; receivers get deliveries over HTTP), so it is not part of the interface."""
    subscribed = streams.groups([PUBLISHER])
    return {stream: groups for stream, groups in subscribed.items() if stream != streams.WEBHOOKS}


def _broker() -> RedisBroker:
    """A broker (never connected) declaring the services' subscribers and publishers."""
    broker = RedisBroker("redis://localhost:6379", logger=logging.getLogger("liaison.asyncapi"))
    for stream, groups in subscriptions().items():
        for group in groups:
            title = f"{_NAMES[stream]}.{group}"
            sub = StreamSub(stream, group=group, consumer=f"{group}@host:pid:id")
            broker.subscriber(stream=sub, title=title, description=_GROUPS[group])(_documented)
    for stream, description in _PUBLISHED_BY.items():
        broker.publisher(stream=stream, title=f"{_NAMES[stream]}.append", description=description)
    return broker


async def _documented(_body: Any) -> None:  # pragma: no cover - never called: documents only
    """A subscriber that only documents one (stream, group)."""


def _rewrite_refs(node: Any) -> Any:
    """JSON Schema references ``#/$defs/X`` → the document's ``#/components/schemas/X``."""
    if isinstance(node, dict):
        return {
            k: (
                v.replace("#/$defs/", "#/components/schemas/")
                if k == "$ref" and isinstance(v, str)
                else _rewrite_refs(v)
            )
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_refs(v) for v in node]
    return node


def _schemas() -> dict[str, Any]:
    """Each event type's JSON Schema (as exported to schemas/json) and the definitions they
    share, as AsyncAPI components (one ``$ref`` namespace for all)."""
    found: dict[str, Any] = {}
    for event_type in sorted(DATA_MODELS):
        schema = event_schema(event_type)
        defs = schema.pop("$defs")
        for key in ("$schema", "$id"):  # an $id would move the base of every $ref inside
            schema.pop(key)
        for name, definition in [(event_type.value, schema), *defs.items()]:
            rewritten = _rewrite_refs(definition)
            if found.setdefault(name, rewritten) != rewritten:
                raise ValueError(f"two event schemas define {name!r} differently")
    found[_DEAD_LETTER] = {
        "type": "object",
        "title": "Dead letter",
        "description": "The fields of a dead-letter entry (each a stream field, not JSON).",
        "required": ["origin", "entry_id", "reason", "at", "payload"],
        "additionalProperties": False,
        "properties": {
            "origin": {
                "type": "string",
                "description": "The stream the entry came from, or "
                "`import:<adapter>` for a rejected file row.",
            },
            "entry_id": {
                "type": "string",
                "description": "The entry's id on that stream, or `FILE row N`.",
            },
            "reason": {
                "type": "string",
                "description": "Why it was refused (e.g. `invalid "
                "event: data.drugs.0.quantity: …`).",
            },
            "at": {"type": "string", "format": "date-time", "description": "When (UTC)."},
            "payload": {"type": "string", "description": "What was refused, as it was."},
        },
    }
    found[_ACCESS_RECORD] = _ACCESS_SCHEMA
    return dict(sorted(found.items()))


_ACCESS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Access record",
    "description": "One read of personal data, as JSON in field `__data__` (canonical form).",
    "required": ["id", "at", "principal", "role", "channel", "events", "persons", "named"],
    "properties": {
        "id": {"type": "string", "maxLength": 64, "description": "Unique id (uuid hex)."},
        "at": {"type": "string", "format": "date-time", "description": "When it was read (UTC)."},
        "principal": {"type": "string", "description": "Who read it (`cli:<OS user>` on the CLI)."},
        "role": {"type": "string", "enum": ["officer", "auditor", "publisher"]},
        "person": {
            "type": ["string", "null"],
            "description": "The person the token was issued to.",
        },
        "channel": {
            "type": "string",
            "description": "Through what: `api.inbox`, `console.alert`, …",
        },
        "purpose": {"type": ["string", "null"], "description": "Why, as the reader gave it."},
        "unit": {"type": ["string", "null"], "description": "Whose inbox was read."},
        "events": {
            "type": "array",
            "description": "`[source, id]` of each event whose persons were shown.",
            "items": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2},
        },
        "persons": {
            "type": "array",
            "description": "HMAC-SHA-256 (hex) of each document number shown, under the "
            "deployment's access index key: never the number.",
            "items": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        },
        "named": {"type": "integer", "minimum": 0, "description": "Persons shown."},
    },
}


def _message(event_type: EventType) -> dict[str, Any]:
    model = DATA_MODELS[event_type]
    summary = (model.__doc__ or "").strip().splitlines()[0].replace("``", "`")
    who = "the system" if event_type in SYSTEM_TYPES else "an agency"
    return {
        "name": event_type.value,
        "title": f"{event_type.value} (published by {who})",
        "summary": summary,
        "description": _ENTRY,
        "contentType": "application/cloudevents+json",
        "payload": {"$ref": f"#/components/schemas/{event_type.value}"},
    }


def _messages_of(stream: str) -> list[str]:
    if stream == streams.DEAD_LETTERS:
        return [_DEAD_LETTER]
    if stream == streams.ACCESS:
        return [_ACCESS_RECORD]
    if stream in _CANONICAL_TYPES:
        return [t.value for t in _CANONICAL_TYPES[stream]]
    return sorted(t.value for t in AGENCY_TYPES)  # an ingress stream


_HASH_TAG = {
    "description": "The Redis Cluster hash tag every key shares, braces included: the key "
    "is literally `{liaison}:stream:…` (so the Lua scripts touching several keys stay on one "
    "slot).",
    "enum": ["{liaison}"],
    "default": "{liaison}",
}
_PUBLISHER_PARAMETER = {
    "description": "The name of the agency's publisher principal in the configuration "
    "(letters, digits, `.`, `_` or `-`): `uz-customs` appends to "
    "`{liaison}:stream:ingress:uz-customs`. Its Valkey ACL user may append to that stream "
    "only (`deploy/users.acl`).",
    "examples": ["uz-customs"],
}


def _summary(action: str, channel: dict[str, Any]) -> str:
    address = channel["address"]
    if action == "receive":
        return f"consumer group `{channel['bindings']['redis']['groupName']}` reads `{address}`"
    return f"the services append to `{address}`"


def _complete(generated: dict[str, Any]) -> dict[str, Any]:
    """FastStream's document, completed: messages and schemas, parameters, server, access."""
    channels: dict[str, Any] = {}
    for name, channel in sorted(generated["channels"].items()):
        address = channel["address"]
        binding = dict(channel["bindings"]["redis"])
        binding.pop("consumerName", None)  # one per process: not part of the interface
        parameters = {"liaison": _HASH_TAG}
        if address == streams.ingress_stream(PUBLISHER):
            parameters["publisher"] = _PUBLISHER_PARAMETER
        channels[name] = {
            "address": address,
            "title": f"`{address}`",
            "description": channel["description"],
            "servers": [{"$ref": "#/servers/liaison"}],
            "parameters": parameters,
            "messages": {m: {"$ref": f"#/components/messages/{m}"} for m in _messages_of(address)},
            "bindings": {"redis": binding},
        }
    operations: dict[str, Any] = {}
    for name, operation in sorted(generated["operations"].items()):
        channel_id = operation["channel"]["$ref"].rsplit("/", 1)[1]
        messages = channels[channel_id]["messages"]
        operations[name] = {
            "action": operation["action"],
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "summary": _summary(operation["action"], channels[channel_id]),
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{m}"} for m in messages],
        }
    on_streams = sorted(set(EventType) - LEDGER_TYPES, key=lambda t: t.value)
    messages = {t.value: _message(t) for t in on_streams}
    messages[_ACCESS_RECORD] = {
        "name": _ACCESS_RECORD,
        "title": "An access record",
        "summary": "One read of personal data: who, when, through what, why, what.",
        "contentType": "application/json",
        "payload": {"$ref": f"#/components/schemas/{_ACCESS_RECORD}"},
    }
    messages[_DEAD_LETTER] = {
        "name": _DEAD_LETTER,
        "title": "A dead letter",
        "summary": "An entry that could not be handled, with where it came from and why.",
        "payload": {"$ref": f"#/components/schemas/{_DEAD_LETTER}"},
    }
    server = generated["servers"]["development"]
    return {
        "asyncapi": generated["asyncapi"],
        "info": {
            "title": "Liaison Exchange streams",
            "version": VERSION,
            "description": "The Redis Streams of Liaison Exchange. Agency systems with Redis "
            "access append CloudEvents to their publisher's own ingress stream; the canonical "
            "streams carry what was accepted and what the system says about alerts, the "
            "dead-letter stream what was refused. Event schemas: `schemas/json/` "
            "(JSON Schema 2020-12, embedded here). See `docs/redis-streams.md`.",
            "license": {"name": "Apache-2.0"},
        },
        "defaultContentType": "application/cloudevents+json",
        "servers": {
            "liaison": {
                "host": "{host}",
                "protocol": server["protocol"],
                "protocolVersion": "7",
                "description": "The deployment's Redis ≥ 7 or Valkey (`LIAISON_REDIS_URL`). "
                "The embedded server of a single host listens on a Unix socket in the data "
                "directory, for its own account only.",
                "variables": {
                    "host": {"default": "localhost:6379", "description": "host:port of the server"}
                },
                "security": [{"$ref": "#/components/securitySchemes/aclUser"}],
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": _schemas(),
            "securitySchemes": {
                "aclUser": {
                    "type": "userPassword",
                    "description": "A Valkey/Redis ACL user per agency that may only XADD "
                    "(and WAITAOF) to its own ingress stream (the `agency` line of "
                    "`deploy/users.acl`).",
                }
            },
        },
    }


@functools.cache
def document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the streams (the same for every deployment)."""
    spec = AsyncAPI(
        _broker(), title="Liaison Exchange streams", version=VERSION, schema_version="3.0.0"
    ).to_specification()
    generated: dict[str, Any] = json.loads(spec.to_json())
    return _complete(generated)


def render() -> str:
    """The committed file's exact text."""
    return json.dumps(document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write ``schemas/asyncapi.json``, or with ``--check`` exit 1 if it is not current."""
    parser = argparse.ArgumentParser(prog="python -m services.core.asyncapi", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if stale")
    args = parser.parse_args(argv)
    current = PATH.exists() and PATH.read_text(encoding="utf-8") == render()
    if args.check:
        if current:
            print(f"{PATH} is current")
            return 0
        print(f"stale or missing: {PATH}; run `make schemas` and commit", file=sys.stderr)
        return 1
    if not current:
        PATH.write_text(render(), encoding="utf-8")
    print(f"{PATH}: {'unchanged' if current else 'written'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
