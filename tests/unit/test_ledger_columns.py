"""Verification's check of the indexed columns against the hashed text (services/ledger/columns.py).

The fast reading must say "agree" exactly when the writer's own derivation
(``record_of_payload``) gives the same columns — for every event the schema
accepts, however awkward its ids, and for stored text that is not canonical.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.events import CloudEvent
from services.ledger.columns import COLUMNS, differing, index_of, index_text
from services.ledger.records import Record, record_of_payload
from tests import factories

# ids and subjects: any printable text the schema accepts, JSON's special characters favoured
AWKWARD = st.text(
    st.sampled_from([*'"\\}{,:/ aZ9é\u2028\U0001f600'])
    | st.characters(min_codepoint=0xA0, exclude_categories=("Cs",)),
    min_size=1,
    max_size=12,
)
TIMES = st.sampled_from(
    ["2026-01-05T10:00:00+05:00", "2026-01-05T05:00:00Z", "2026-01-05T05:00:00.5Z",
     "2026-01-05T05:00:00.123456+00:00", "2026-01-04T23:59:59.999999-05:30"]
)  # fmt: skip


def _columns(record: Record) -> tuple[str, str, str, str, str | None]:
    return record.event_id, record.source, record.type, record.event_time, record.subject


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["alert", "seizure"]))
    extra: dict[str, Any] = {"id": draw(AWKWARD), "time": draw(TIMES)}
    if draw(st.booleans()):
        extra["subject"] = draw(AWKWARD)
    if draw(st.booleans()):
        extra["tlp"] = draw(st.sampled_from(["clear", "green", "amber", "amber+strict", "red"]))
    if draw(st.booleans()):
        extra["piireleasableto"] = "UZ"
    if draw(st.booleans()):
        extra["dataschema"] = draw(AWKWARD)
    if kind == "alert":
        return factories.alert(**extra)
    return factories.seizure(**extra)


@settings(max_examples=300, deadline=None)
@given(events(), st.sampled_from(range(len(COLUMNS))), AWKWARD | TIMES | st.none())
def test_the_index_read_from_the_text_is_the_writers(
    doc: dict[str, Any], column: int, forged: str | None
) -> None:
    text = CloudEvent.model_validate(doc).to_json().decode()
    columns = _columns(record_of_payload(text.encode()))
    assert index_of(text) == index_text(*columns)
    edited = list(columns)
    edited[column] = forged
    if tuple(edited) != columns and (forged is not None or COLUMNS[column] == "subject"):
        stored = index_text(*edited)
        assert stored != index_of(text)
        assert differing(index_of(text), stored) == [COLUMNS[column]]


def test_the_texts_own_time_is_not_the_column() -> None:
    text = CloudEvent.model_validate(factories.alert(time="2026-01-05T10:00:00+05:00")).to_json()
    columns = _columns(record_of_payload(text))
    assert columns[3] == "2026-01-05T05:00:00.000000Z"
    assert index_of(text.decode()) == index_text(*columns)
    local = index_text(*columns[:3], "2026-01-05T10:00:00+05:00", columns[4])
    assert differing(index_of(text.decode()), local) == ["event_time"]


@pytest.mark.parametrize(
    "text",
    [
        # duplicate members: JSON readers keep the last, and so does the index
        '{"data":{"severity":"urgent","summary":"x"},"id":"first","type":"alert.raised",'
        '"source":"/units/BLO-OYBEK","specversion":"1.0","time":"2026-01-05T05:00:00Z",'
        '"id":"second"}',
        # not the canonical layout (spaces, order)
        '{"data": {"severity": "urgent", "summary": "x"}, "type": "alert.raised", '
        '"id": "second", "source": "/units/BLO-OYBEK", "specversion": "1.0", '
        '"time": "2026-01-05T05:00:00Z", "subject": "S"}',
    ],
)
def test_text_in_another_layout_is_read_as_the_writer_reads_it(text: str) -> None:
    record = record_of_payload(text.encode())
    assert record.event_id == "second"
    assert index_of(text) == index_text(*_columns(record))


def test_a_subject_outside_the_tail_is_found() -> None:
    text = json.dumps(
        {"data": {"severity": "urgent", "summary": "x"}, "subject": "S", "datacontenttype":
         "application/json", "id": "a", "source": "/units/BLO-OYBEK", "specversion": "1.0",
         "time": "2026-01-05T05:00:00Z", "type": "alert.raised"},
        separators=(",", ":"),
    )  # fmt: skip
    columns = _columns(record_of_payload(text.encode()))
    assert columns[4] == "S"
    assert index_of(text) == index_text(*columns)


VALUES = st.text(st.sampled_from("ab\x01\x02"), max_size=4)


@given(st.tuples(VALUES, VALUES, VALUES, VALUES, VALUES | st.none()),
       st.tuples(VALUES, VALUES, VALUES, VALUES, VALUES | st.none()))  # fmt: skip
def test_two_sets_of_columns_never_share_an_index_text(
    a: tuple[str, str, str, str, str | None], b: tuple[str, str, str, str, str | None]
) -> None:
    """Even columns an insider filled with the separators: shifting a value from one column into
    another, or a subject into the time, changes the index text."""
    honest = all("\x01" not in v and "\x02" not in v for v in a if v is not None)
    if honest and a != b:
        assert index_text(*a) != index_text(*b)
