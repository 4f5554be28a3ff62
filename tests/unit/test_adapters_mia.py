"""mia-jsonl: police case reports, one JSON object per line."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from schemas.seizures import SeizureReported
from tests.unit.adapter_helpers import convert, errors, event


def case(**changes: Any) -> str:
    """One line: a valid case with ``changes`` (None removes a key)."""
    doc: dict[str, Any] = {
        "case_no": "12-3456/2024", "division": "IMT Gulistan", "opened": "2024-03-14T09:20:00+05:00",
        "items": [{"substance": "героин", "amount": 20032, "uom": "г"}],
        "suspects": [{"full_name": "Example Driver", "citizenship": "TJ", "passport": "P-0000"}],
        "route": ["TJ", "UZ", "KZ"], "joint_with": ["SSS"], "releasable_to": "UZ,TJ",
    }  # fmt: skip
    doc |= changes
    return json.dumps({k: v for k, v in doc.items() if v is not None}, ensure_ascii=False)


def test_the_sample_maps_every_case() -> None:
    sample = resources.files("services.ingest.adapters") / "samples" / "mia-cases.jsonl"
    outcomes = convert("mia-jsonl", sample.read_bytes())
    assert len(outcomes) == 4
    assert all(not isinstance(o, dict) for o in outcomes.values()), outcomes


def test_a_case_becomes_a_canonical_seizure() -> None:
    ev = event(convert("mia-jsonl", case() + "\n")[1])
    assert (ev.id, ev.source, ev.type) == (
        "MIA-12-3456/2024",
        "/units/IMT-GULISTAN",
        "seizure.reported",
    )
    data = ev.data
    assert isinstance(data, SeizureReported)
    assert (data.drugs[0].substance, data.drugs[0].quantity, data.drugs[0].measure) == (
        "heroin", 20.032, "kg",
    )  # fmt: skip
    assert data.agencies == ("MIA", "SSS")
    assert data.detained == 1
    assert data.case == "12-3456/2024"  # what a customs report of the same seizure gives too
    assert data.persons is not None
    assert (data.persons[0].name, data.persons[0].nationality) == ("Example Driver", "TJ")
    assert ev.releasableto == "UZ,TJ"


def test_local_times_numbers_as_text_and_several_items() -> None:
    items = [{"substance": "gashish", "amount": "2,3", "uom": "кг"},
             {"substance": "tramadol", "amount": 120, "uom": "таблеток"}]  # fmt: skip
    line = case(case_no=3458, division="Гулистан", opened="2024-03-15 14:00", items=items,
                suspects=None, detained=2, route="TJ-UZ")  # fmt: skip
    ev = event(convert("mia-jsonl", line)[1])
    assert ev.id == "MIA-3458"
    assert ev.time.isoformat() == "2024-03-15T14:00:00+05:00"
    assert isinstance(ev.data, SeizureReported)
    assert [(d.substance, d.quantity, d.measure) for d in ev.data.drugs] == [
        ("hashish", 2.3, "kg"), ("tramadol", 120, "units"),
    ]  # fmt: skip
    assert ev.data.detained == 2
    assert ev.data.route == ("TJ", "UZ")


def test_every_kind_of_bad_line_is_reported_and_the_file_goes_on() -> None:
    lines = [
        "{not json",  # 1
        "[1, 2]",  # 2: not an object
        "",  # 3: blank, skipped
        case(case_no=None, division=None, opened=None, items=None),  # 4: required keys missing
        case(case_no="b", division="Atlantis", opened="yesterday"),  # 5: bad values
        case(case_no="c", items=[{"substance": "sugar", "amount": -1, "uom": "bags"}, "x"]),  # 6
        case(case_no="d", suspects=[{"citizenship": "TJ"}], joint_with="SSS"),  # 7
        case(case_no="e", route=["TJ", "Uzbekistan"]),  # 8
        case(case_no="f", releasable_to="everyone"),  # 9: the schema's own error
        case(case_no="g"),  # 10: good
    ]
    data = ("\n".join(lines) + "\n").encode() + b'{"case_no": "\xff"}\n'
    out = convert("mia-jsonl", data)
    assert set(out) == {1, 2, 4, 5, 6, 7, 8, 9, 10, 11}
    assert errors(out[1])["(row)"].startswith("not JSON: ")
    assert errors(out[2]) == {"(row)": "expected a JSON object (one case per line)"}
    assert errors(out[4]) == {
        "case_no": "required", "division": "required", "opened": "required",
        "items": "required: a list of at least one {substance, amount, uom}",
    }  # fmt: skip
    assert set(errors(out[5])) == {"division", "opened"}
    assert set(errors(out[6])) == {"items.0.substance", "items.0.amount", "items.0.uom", "items.1"}
    assert set(errors(out[7])) == {"suspects.0.full_name", "joint_with"}
    assert set(errors(out[8])) == {"route"}
    assert set(errors(out[9])) == {"releasable_to"}
    assert event(out[10]).id == "MIA-g"
    assert errors(out[11]) == {"(row)": "not UTF-8 text"}
