"""The streams' AsyncAPI document: current as committed, valid AsyncAPI 3.0, complete.

Valid means: it passes the AsyncAPI 3.0.0 JSON Schema (vendored from the npm package
``@asyncapi/specs``, tests/data/asyncapi/VENDORED.md), every ``$ref`` resolves, and every
parameter of a channel address is declared (the rule the official parser adds to the schema).
That a running runtime subscribes to exactly these streams is
tests/integration/test_asyncapi_subscribers.py.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import jsonschema_rs

from schemas.export import event_schema
from schemas.vocabulary import AGENCY_TYPES, LEDGER_TYPES, SYSTEM_TYPES, EventType
from services.core import asyncapi, streams

VENDORED = Path(__file__).parents[1] / "data" / "asyncapi"
META_SCHEMA = VENDORED / "asyncapi-3.0.0.schema.json"
META_SHA256 = "abe96881dbfaad495ccbb6bd8d3fb43ca18a13b9d7564849ccb66f39d5e5b20f"
HINT = "the streams or event models changed: run `make schemas` and commit schemas/asyncapi.json"


def _doc() -> dict[str, Any]:
    return asyncapi.document()


def test_committed_document_is_current() -> None:
    assert asyncapi.PATH.read_text(encoding="utf-8") == asyncapi.render(), HINT
    assert asyncapi.main(["--check"]) == 0


def test_vendored_meta_schema_is_the_published_one() -> None:
    assert hashlib.sha256(META_SCHEMA.read_bytes()).hexdigest() == META_SHA256
    assert META_SHA256 in (VENDORED / "VENDORED.md").read_text(encoding="utf-8")


def test_document_is_valid_asyncapi_3() -> None:
    validator = jsonschema_rs.Draft7Validator(json.loads(META_SCHEMA.read_text(encoding="utf-8")))
    errors = [
        f"{'/'.join(map(str, e.instance_path))}: {e.message}" for e in validator.iter_errors(_doc())
    ]
    assert errors == []
    assert _doc()["asyncapi"] == "3.0.0"


def test_the_meta_schema_catches_a_broken_document() -> None:
    # the validator is not vacuous: an operation without its action is refused
    broken = json.loads(json.dumps(_doc()))
    del next(iter(broken["operations"].values()))["action"]
    validator = jsonschema_rs.Draft7Validator(json.loads(META_SCHEMA.read_text(encoding="utf-8")))
    assert not validator.is_valid(broken)


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_every_reference_resolves() -> None:
    doc = _doc()
    for ref in _refs(doc):
        assert ref.startswith("#/"), ref
        node: Any = doc
        for part in ref[2:].split("/"):
            key = unquote(part).replace("~1", "/").replace("~0", "~")
            assert key in node, f"{ref}: no {key!r}"
            node = node[key]


def test_every_address_parameter_is_declared() -> None:
    for name, channel in _doc()["channels"].items():
        used = set(re.findall(r"\{([^}]+)\}", channel["address"]))
        assert used == set(channel.get("parameters", {})), name
        assert channel["parameters"]["liaison"]["enum"] == ["{liaison}"]  # the hash tag itself


def test_streams_and_their_messages() -> None:
    doc = _doc()
    by_address: dict[str, set[str]] = {}
    for channel in doc["channels"].values():
        by_address.setdefault(channel["address"], set()).update(channel["messages"])
    agency = {t.value for t in AGENCY_TYPES}
    assert by_address == {
        streams.ingress_stream("{publisher}"): agency,
        streams.SEIZURES: {EventType.SEIZURE_REPORTED.value},
        streams.ALERTS: agency - {EventType.SEIZURE_REPORTED.value},
        streams.RECEIPTS: {t.value for t in SYSTEM_TYPES - LEDGER_TYPES},
        streams.DEAD_LETTERS: {"dead-letter"},
        streams.ACCESS: {"access-record"},
    }
    receive = {
        (
            doc["channels"][op["channel"]["$ref"].rsplit("/", 1)[1]]["address"],
            doc["channels"][op["channel"]["$ref"].rsplit("/", 1)[1]]["bindings"]["redis"][
                "groupName"
            ],
        )
        for op in doc["operations"].values()
        if op["action"] == "receive"
    }
    assert receive == {(s, g) for s, groups in asyncapi.subscriptions().items() for g in groups}


def test_payloads_are_the_exported_event_schemas() -> None:
    schemas = _doc()["components"]["schemas"]
    for event_type in EventType:
        exported = event_schema(event_type)
        embedded = schemas[event_type.value]
        assert embedded["properties"]["type"] == exported["properties"]["type"]
        assert embedded["required"] == exported["required"]
        for name, definition in exported["$defs"].items():
            text = json.dumps(definition).replace("#/$defs/", "#/components/schemas/")
            assert schemas[name] == json.loads(text), name
        assert "$id" not in embedded  # it would move the base of the references inside


def test_no_deployment_detail_leaks() -> None:
    text = asyncapi.render()
    assert "consumerName" not in text  # per process, not the interface
    assert "@host:pid" not in text
    assert _doc()["servers"]["liaison"]["host"] == "{host}"
