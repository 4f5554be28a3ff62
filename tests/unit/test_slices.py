"""A batch screened a slice at a time means exactly what the same batch screened at once means:
the parse gives ``json.loads``'s value or gives up (:class:`Irregular`, and the body is screened
whole elsewhere), never another value; validation gives ``validate_batch``'s events or errors;
and between events the event loop is given back."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.events import CloudEvent
from schemas.topology import default_topology
from services.ingest.intake import MAX_BATCH, Rejected, validate_batch
from services.ingest.slices import ELEMENT_MAX, Irregular, Slices, parse_array, validate_array
from tests import factories

TOPOLOGY = default_topology()
ERRORS = 100
NEVER = 1e9
"""A slice that never ends: the loop is not given back (the value is the same either way)."""

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
LAYOUTS = [
    {},
    {"separators": (",", ":")},
    {"indent": 2},
    {"indent": "\t", "separators": (" ,", " : ")},
    {"ensure_ascii": False},
]
ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32"]


def _parse(body: bytes) -> Any:
    return asyncio.run(parse_array(body, Slices(NEVER)))


def _same_or_irregular(body: bytes) -> None:
    """``parse_array(body)`` is ``json.loads(body)``, or Irregular (then json.loads may fail)."""
    try:
        parsed = _parse(body)
    except Irregular:
        return
    assert parsed == json.loads(body)


@given(st.lists(JSON, max_size=6), st.sampled_from(LAYOUTS), st.sampled_from(ENCODINGS))
def test_an_array_parses_to_what_json_loads_gives(
    items: list[Any], layout: dict[str, Any], encoding: str
) -> None:
    text = json.dumps(items, **layout)
    for body in (text.encode(encoding), f" \n\t{text}\r\n ".encode(encoding)):
        assert _parse(body) == json.loads(body)


@given(st.lists(JSON, min_size=1, max_size=4), st.data())
def test_a_damaged_body_gives_json_loads_value_or_nothing(items: list[Any], data: Any) -> None:
    body = bytearray(json.dumps(items).encode())
    at = data.draw(st.integers(0, len(body) - 1))
    edit = data.draw(st.sampled_from(["cut", "drop", "byte"]))
    if edit == "cut":
        del body[at:]
    elif edit == "drop":
        del body[at]
    else:
        body[at] = data.draw(st.sampled_from(b',:[]{}" \\0x\xff\x00'))
    _same_or_irregular(bytes(body))


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{}",
        b'"[1]"',
        b"[1,]",
        b"[1 2]",
        b"[1],",
        b"[1] [2]",
        b"[NaN]",
        b"[Infinity]",
        b"[1e999999]",  # a float: inf is what json.loads gives too
        b"[" + b"9" * 5000 + b"]",  # Python's guard against huge integers
        b"[" + b"[" * 100_000 + b"]" * 100_000 + b"]",  # nested too deeply
        b'["\xff"]',
        b'["\\ud800"]',  # a lone surrogate escape: json.loads gives it as is
    ],
)
def test_irregular_bodies_are_left_to_the_whole_parse(body: bytes) -> None:
    _same_or_irregular(body)


def test_an_event_over_the_bound_or_one_too_many_is_left_to_the_whole_screening() -> None:
    small = {"padding": "x" * 100}
    assert len(_parse(json.dumps([small] * MAX_BATCH).encode())) == MAX_BATCH
    with pytest.raises(Irregular):
        _parse(json.dumps([small] * (MAX_BATCH + 1)).encode())
    at_bound = {"padding": "x" * (ELEMENT_MAX - len('{"padding": ""}'))}
    assert _parse(json.dumps([at_bound]).encode()) == [at_bound]
    with pytest.raises(Irregular):
        _parse(json.dumps([small, {"padding": at_bound["padding"] + "x"}]).encode())


def test_validation_in_slices_means_what_validate_batch_means() -> None:
    good = [factories.seizure() for _ in range(5)]
    events = asyncio.run(validate_array(good, TOPOLOGY, Slices(NEVER), CloudEvent.to_json, ERRORS))
    assert events == [event.to_json() for event in validate_batch(good, TOPOLOGY)[0]]

    bad = [*good[:2], {**good[2], "source": "nowhere"}, good[3], {**good[4], "k": 1}]
    with pytest.raises(Rejected) as whole:
        validate_batch(bad, TOPOLOGY)
    with pytest.raises(Rejected) as sliced:
        asyncio.run(validate_array(bad, TOPOLOGY, Slices(NEVER), CloudEvent.to_json, ERRORS))
    assert sliced.value.rejections == whole.value.rejections
    assert [r.index for r in sliced.value.rejections] == [2, 4]

    with pytest.raises(Rejected, match="the batch is empty"):
        asyncio.run(validate_array([], TOPOLOGY, Slices(NEVER), CloudEvent.to_json, ERRORS))


def test_only_the_errors_to_show_are_kept_and_all_are_counted() -> None:
    junk = [{**factories.seizure(), **{f"k{k}": k for k in range(30)}} for _ in range(10)]
    with pytest.raises(Rejected) as whole:
        validate_batch(junk, TOPOLOGY)
    with pytest.raises(Rejected) as sliced:
        asyncio.run(validate_array(junk, TOPOLOGY, Slices(NEVER), CloudEvent.to_json, 45))
    assert sliced.value.count == whole.value.count == 300
    assert sliced.value.rejections == whole.value.rejections[:45]


async def test_the_event_loop_is_given_back_between_events_once_a_slice_is_used() -> None:
    batch = [factories.seizure() for _ in range(50)]
    body = json.dumps(batch).encode()
    turns = 0

    async def other_request() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    other = asyncio.create_task(other_request())
    await asyncio.sleep(0)
    try:
        started = turns
        raw = await parse_array(body, Slices(0))  # every slice used up after one event
        parsed = turns - started
        await validate_array(raw, TOPOLOGY, Slices(0), CloudEvent.to_json, ERRORS)
        validated = turns - started - parsed
        started = turns
        await validate_array(raw, TOPOLOGY, Slices(NEVER), CloudEvent.to_json, ERRORS)
        unsliced = turns - started
    finally:
        other.cancel()
    assert parsed >= len(batch) - 1  # between each two events
    assert validated >= len(batch)
    assert unsliced == 0  # while a slice lasts, nothing else runs
