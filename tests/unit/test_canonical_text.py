"""The canonical text of an event, pinned byte for byte.

The ledger stores :meth:`CloudEvent.to_json` verbatim and hashes it into its
chain, so the same event must always give the same bytes, whatever makes
``to_json`` faster: sorted keys, no spaces, UTF-8 as is, ``\\t``, ``\\n`` and
``\\u0007`` escaped, floats as Python writes them (``1e-05``, ``1e+16``).
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from schemas.events import CloudEvent, canonical_json

SEIZURE: dict[str, Any] = {
    "specversion": "1.0", "id": "s-ü-1", "source": "/units/BLO-OYBEK", "type": "seizure.reported",
    "time": "2024-05-01T10:00:00.5+05:00", "subject": "CASE-1", "tlp": "TLP:GREEN",
    "releasableto": " uz,tj ",
    "data": {
        "occurred_at": "2024-05-01T04:59:59Z",
        "drugs": [
            {"substance": " Heroin ", "quantity": 20032, "measure": "g"},
            {"substance": "tramadol", "quantity": 1500, "measure": "Tablets"},
            {"substance": "opium", "quantity": 10, "measure": "mg"},
            {"substance": "hashish", "quantity": 1e16, "measure": "kg"},
            {"substance": "acetic anhydride", "quantity": 0.25, "measure": "l"},
        ],
        "agencies": ["mia", "SSS"],
        "location": {"unit": "BLO-OYBEK", "region": "Syrdarya", "lat": 40.5, "lon": 69.25},
        "route": ["af", "TJ"],
        "concealment": 'tank "KAMAZ" \\ Ташкент\t\n ✓',
        "detained": 2,
        "persons": [{"name": "Example Driver", "nationality": "tj"}],
    },
}  # fmt: skip
SEIZURE_TEXT = (
    '{"data":{"agencies":["MIA","SSS"],"concealment":"tank \\"KAMAZ\\" \\\\ Ташкент\\t\\n ✓",'
    '"detained":2,"drugs":[{"measure":"kg","quantity":20.032,"reported_measure":"g",'
    '"reported_quantity":20032.0,"substance":"heroin"},{"measure":"units","quantity":1500.0,'
    '"reported_measure":"Tablets","reported_quantity":1500.0,"substance":"tramadol"},'
    '{"measure":"kg","quantity":1e-05,"reported_measure":"mg","reported_quantity":10.0,'
    '"substance":"opium"},{"measure":"kg","quantity":1e+16,"substance":"hashish"},'
    '{"measure":"l","quantity":0.25,"substance":"acetic anhydride"}],'
    '"location":{"lat":40.5,"lon":69.25,"region":"Syrdarya","unit":"BLO-OYBEK"},'
    '"occurred_at":"2024-05-01T04:59:59Z","persons":[{"name":"Example Driver","nationality":"TJ"}],'
    '"route":["AF","TJ"]},"datacontenttype":"application/json","id":"s-ü-1","releasableto":"UZ,TJ",'
    '"source":"/units/BLO-OYBEK","specversion":"1.0","subject":"CASE-1",'
    '"time":"2024-05-01T10:00:00.500000+05:00","tlp":"green","type":"seizure.reported"}'
)
ALERT: dict[str, Any] = {
    "specversion": "1.0", "id": "a-1", "source": "/units/BLO-OYBEK", "type": "alert.raised",
    "time": "2024-05-01T10:00:00Z",
    "data": {"severity": "flash", "summary": "Truck",
             "window": {"from": "2024-05-01T10:00:00Z", "until": "2024-05-02T10:00:00+01:00"}},
}  # fmt: skip
ALERT_TEXT = (
    '{"data":{"recipients":[],"route":[],"severity":"flash","summary":"Truck","vehicles":[],'
    '"window":{"from":"2024-05-01T10:00:00Z","until":"2024-05-02T10:00:00+01:00"}},'
    '"datacontenttype":"application/json","id":"a-1","source":"/units/BLO-OYBEK",'
    '"specversion":"1.0","time":"2024-05-01T10:00:00Z","tlp":"amber","type":"alert.raised"}'
)


def test_a_seizure_has_exactly_this_text() -> None:
    assert CloudEvent.model_validate(SEIZURE).to_json() == SEIZURE_TEXT.encode()


def test_control_characters_are_escaped() -> None:
    """The schema refuses them in text now; the form stays what it was for what came before."""
    assert (
        canonical_json({"a": "\x07\x1b", "b": "\u2028"})
        == '{"a":"\\u0007\\u001b","b":"\u2028"}'.encode()
    )


def test_an_alert_has_exactly_this_text() -> None:
    assert CloudEvent.model_validate(ALERT).to_json() == ALERT_TEXT.encode()


def _documented(event: CloudEvent) -> bytes:
    """The canonical form as docs/ledger.md documents it for auditors."""
    doc = event.model_dump(mode="json", by_alias=True, exclude_none=True)
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@given(
    quantity=st.floats(min_value=1e-300, max_value=1e300),
    text=st.text(  # what a note may hold: no control character but line breaks and tabs
        st.characters(exclude_categories=("Cs", "Cc"), exclude_characters="\u2028\u2029")
        | st.sampled_from("\n\t"),
        min_size=1,
    ).filter(str.strip),
)
def test_any_text_and_quantity_serialise_as_documented(quantity: float, text: str) -> None:
    data = {**SEIZURE["data"], "concealment": text,
            "drugs": [{"substance": "heroin", "quantity": quantity, "measure": "kg"}]}  # fmt: skip
    event = CloudEvent.model_validate({**SEIZURE, "data": data})
    assert event.to_json() == _documented(event)
