"""Export one JSON Schema per event type: ``schemas/json/<type>.schema.json``.

Each is the CloudEvent envelope with that type's data model (and the type's
rules: its source form, a required ``subject`` for alert changes). Output is
deterministic (sorted keys, indent 2, trailing newline), so the files are
committed and a test proves them current.

    python -m schemas.export          # write them (``make schemas``)
    python -m schemas.export --check  # exit 1 listing stale, missing or extra files
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from schemas.alerts import REF_MAX, SYSTEM_ID_MAX
from schemas.events import (
    DATA_MODELS,
    NEEDS_SUBJECT,
    SYSTEM_SOURCE_PATTERN,
    UNIT_SOURCE_PATTERN,
    CloudEvent,
)
from schemas.vocabulary import SYSTEM_TYPES, EventType

JSON_DIR = Path(__file__).with_name("json")
SUFFIX = ".schema.json"
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def filename(event_type: EventType) -> str:
    """``alert.raised`` → ``alert.raised.schema.json``."""
    return f"{event_type.value}{SUFFIX}"


@functools.cache
def _envelope() -> dict[str, Any]:
    return CloudEvent.model_json_schema()


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"].rsplit("/", 1)[1]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(v) for k, v in node.items() if k != "$defs"))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


def _prune(schema: dict[str, Any]) -> None:
    """Keep only the ``$defs`` the schema reaches."""
    defs = schema["$defs"]
    keep: set[str] = set()
    todo = _refs(schema)
    while todo:
        name = todo.pop()
        if name not in keep:
            keep.add(name)
            todo |= _refs(defs[name])
    schema["$defs"] = {name: defs[name] for name in sorted(keep)}


def event_schema(event_type: EventType) -> dict[str, Any]:
    """The JSON Schema of a CloudEvent of ``event_type``."""
    model = DATA_MODELS[event_type]
    schema = copy.deepcopy(_envelope())
    props = schema["properties"]
    system = event_type in SYSTEM_TYPES
    props["source"]["pattern"] = SYSTEM_SOURCE_PATTERN if system else UNIT_SOURCE_PATTERN
    props["id"]["maxLength"] = SYSTEM_ID_MAX if system else REF_MAX
    props["type"] = {
        "const": event_type.value,
        "description": props["type"]["description"],
        "type": "string",
    }
    props["data"] = {
        "$ref": f"#/$defs/{model.__name__}",
        "description": props["data"]["description"],
    }
    if event_type in NEEDS_SUBJECT:
        subject = props["subject"]
        (given,) = (s for s in subject["anyOf"] if s.get("type") != "null")
        props["subject"] = {**given, "description": subject["description"], "title": "Subject"}
        schema["required"] = [*schema["required"], "subject"]
    _prune(schema)
    summary = (model.__doc__ or "").strip().splitlines()[0]
    schema.update(
        {
            "$schema": DIALECT,
            "$id": filename(event_type),
            "title": f"Liaison Exchange {event_type.value} event",
            "description": f"A CloudEvent 1.0 (structured JSON) of type {event_type.value}; "
            f"data is {model.__name__}: {summary}",
        }
    )
    return schema


def render_all() -> dict[str, str]:
    """Every schema file's name and exact text."""
    return {
        filename(t): json.dumps(event_schema(t), indent=2, sort_keys=True, ensure_ascii=False)
        + "\n"
        for t in sorted(EventType, key=lambda t: t.value)
    }


def differences(directory: Path = JSON_DIR) -> tuple[list[str], list[str]]:
    """Files of ``directory`` that are stale or missing, and files it should not have."""
    expected = render_all()
    present = {p.name: p for p in directory.glob(f"*{SUFFIX}")}
    stale = [
        name
        for name, text in expected.items()
        if name not in present or present[name].read_text(encoding="utf-8") != text
    ]
    return stale, sorted(set(present) - set(expected))


def main(argv: Sequence[str] | None = None) -> int:
    """Write the schemas, or with ``--check`` report (exit 1) those that are not current."""
    parser = argparse.ArgumentParser(prog="python -m schemas.export", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if stale")
    parser.add_argument("--dir", type=Path, default=JSON_DIR, help="output directory")
    args = parser.parse_args(argv)
    directory: Path = args.dir
    stale, extra = differences(directory)
    if args.check:
        if not stale and not extra:
            print(f"JSON Schemas in {directory} are current")
            return 0
        for name in stale:
            print(f"stale or missing: {directory / name}", file=sys.stderr)
        for name in extra:
            print(f"not an event type: {directory / name}", file=sys.stderr)
        print("run `make schemas` (python -m schemas.export) and commit", file=sys.stderr)
        return 1
    directory.mkdir(parents=True, exist_ok=True)
    texts = render_all()
    for name in stale:
        (directory / name).write_bytes(texts[name].encode())
    for name in extra:
        (directory / name).unlink()
    print(f"{len(stale)} written, {len(extra)} removed, {len(texts) - len(stale)} unchanged")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
