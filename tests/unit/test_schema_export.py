"""The committed JSON Schemas (schemas/json) are exactly what the models export."""

from __future__ import annotations

import json

from schemas.events import DATA_MODELS, NEEDS_SUBJECT
from schemas.export import JSON_DIR, SUFFIX, filename, render_all
from schemas.vocabulary import SYSTEM_TYPES, EventType

HINT = "the event models changed: run `make schemas` and commit schemas/json"


def test_committed_schemas_are_current() -> None:
    expected = render_all()
    committed = {p.name: p.read_text(encoding="utf-8") for p in JSON_DIR.glob(f"*{SUFFIX}")}
    assert sorted(committed) == sorted(expected), HINT
    stale = [name for name, text in expected.items() if committed[name] != text]
    assert not stale, f"{HINT} (stale: {', '.join(stale)})"


def test_one_schema_per_event_type() -> None:
    assert sorted(render_all()) == sorted(filename(t) for t in EventType)


def test_each_schema_is_its_types_envelope() -> None:
    for type_, text in ((t, render_all()[filename(t)]) for t in EventType):
        schema = json.loads(text)
        assert text.endswith("}\n")
        assert schema["$id"] == filename(type_)
        assert schema["properties"]["type"]["const"] == type_.value
        model = DATA_MODELS[type_].__name__
        assert schema["properties"]["data"]["$ref"] == f"#/$defs/{model}"
        assert schema["$defs"][model]["additionalProperties"] is False
        assert schema["additionalProperties"] is False
        assert ("subject" in schema["required"]) == (type_ in NEEDS_SUBJECT)
        prefix = "^/liaison/" if type_ in SYSTEM_TYPES else "^/units/"
        assert schema["properties"]["source"]["pattern"].startswith(prefix)


def test_fields_are_described() -> None:
    def undescribed(node: object, path: str) -> list[str]:
        if isinstance(node, dict):
            found = [
                f"{path}.{name}"
                for name, prop in node.get("properties", {}).items()
                if "description" not in prop
            ]
            for key, value in node.items():
                found += undescribed(value, f"{path}.{key}")
            return found
        return []

    for name, text in render_all().items():
        assert undescribed(json.loads(text), name) == []


def test_window_is_written_with_from() -> None:
    schema = json.loads(render_all()[filename(EventType.ALERT_RAISED)])
    assert set(schema["$defs"]["Window"]["properties"]) == {"from", "until"}
