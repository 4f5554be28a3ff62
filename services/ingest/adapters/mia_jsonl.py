"""``mia-jsonl``: police (Ministry of Internal Affairs, MIA) case reports, as JSON lines.

One JSON object per line (UTF-8; blank lines are skipped), one case each;
keys not listed here are ignored::

    {"case_no": "12-3456/2024", "division": "IMT Gulistan",
     "opened": "2024-03-14T09:20:00+05:00",
     "items": [{"substance": "героин", "amount": 20032, "uom": "г"}],
     "transport": "truck", "concealment": "in the spare tyre",
     "suspects": [{"full_name": "…", "citizenship": "TJ", "passport": "…"}],
     "route": ["TJ", "UZ", "KZ"], "joint_with": ["SSS"],
     "alert_ref": "…", "releasable_to": "UZ,TJ", "pii_releasable_to": "UZ"}

==================  ========  =================================================
key                 required  meaning
==================  ========  =================================================
case_no             yes       case number (text or number); event id ``MIA-<case_no>``;
                              also ``data.case``, the seizure's shared reference (a
                              customs report giving the same case counts once with it)
division            yes       reporting unit or post: ``IMT Gulistan``, ``Гулистан``, ``IMT-GULISTAN``
opened              yes       RFC 3339, or ``YYYY-MM-DD HH:MM`` in Uzbekistan time (UTC+5)
items               yes       ≥ 1 of ``{substance, amount, uom}``; amount a number or ``"20,032"``
transport           no        transport mode
concealment         no        free text
suspects            no        persons detained: ``full_name`` (required), ``citizenship``, ``passport``
detained            no        a count, when suspects are not named
route               no        country codes, a list or ``"TJ-UZ-KZ"``
joint_with          no        other agencies involved (codes), e.g. ``["SSS"]``
alert_ref           no        id of the alert that led to the seizure
releasable_to       no        countries the report may reach
pii_releasable_to   no        countries that may see the suspects' identities
==================  ========  =================================================

Each case becomes a ``seizure.reported`` event from the division's unit,
agencies ``MIA`` and ``joint_with``; suspects become ``data.persons``
(personal data) and ``data.detained`` their number.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import MappingProxyType
from typing import IO, Any

from schemas.topology import Topology
from services.ingest.adapters import vocab
from services.ingest.adapters.base import (
    Problems,
    Record,
    RowInvalid,
    parse_count,
    parse_countries,
    parse_quantity,
    parse_timestamp,
    text_or_none,
)


class MiaJsonl:
    """MIA case reports (JSON lines)."""

    name = "mia-jsonl"
    agency = "MIA"
    fields = MappingProxyType(
        {
            "id": "case_no",
            "source": "division",
            "time": "opened",
            "data.occurred_at": "opened",
            "data.drugs": "items",
            "data.persons": "suspects",
            "data.route": "route",
            "data.agencies": "joint_with",
            "data.alert_id": "alert_ref",
            "data.case": "case_no",
            "releasableto": "releasable_to",
            "piireleasableto": "pii_releasable_to",
        }
    )

    def records(self, file: IO[bytes]) -> Iterator[Record]:
        for row, line in enumerate(file, 1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except UnicodeDecodeError:
                yield Record(row, line.decode(errors="backslashreplace"), "not UTF-8 text")
            except json.JSONDecodeError as exc:
                yield Record(
                    row,
                    line.decode(errors="backslashreplace").rstrip(),
                    f"not JSON: {exc.msg} at column {exc.colno}",
                )
            else:
                yield Record(row, raw)

    def to_event(self, raw: Any, topology: Topology) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise RowInvalid([("(row)", "expected a JSON object (one case per line)")])
        p = Problems()
        case_no = p.need("case_no", raw.get("case_no"), _case_number)
        unit = p.need(
            "division", raw.get("division"), lambda v: vocab.unit_of_post(_str(v), topology)
        )
        when = p.need("opened", raw.get("opened"), parse_timestamp)
        drugs = _items(raw.get("items"), p)
        data: dict[str, Any] = {"drugs": drugs}
        agencies = p.take("joint_with", lambda: _agencies(raw.get("joint_with")))
        data["agencies"] = [self.agency, *(agencies or [])]
        if raw.get("route") is not None:
            data["route"] = p.take("route", lambda: parse_countries(raw["route"]))
        if raw.get("suspects") is not None:
            data["persons"] = _suspects(raw["suspects"], p)
            data["detained"] = len(data["persons"] or [])
        elif raw.get("detained") is not None:
            data["detained"] = p.take("detained", lambda: parse_count(raw["detained"]))
        p.check()
        assert when is not None
        data["occurred_at"] = when.isoformat()
        data["location"] = {"unit": unit}
        data["case"] = case_no
        for key, target in (
            ("transport", "transport"),
            ("concealment", "concealment"),
            ("alert_ref", "alert_id"),
        ):
            if (value := text_or_none(raw.get(key))) is not None:
                data[target] = value
        event: dict[str, Any] = {
            "specversion": "1.0",
            "id": f"{self.agency}-{case_no}",
            "source": f"/units/{unit}",
            "type": "seizure.reported",
            "time": when.isoformat(),
            "data": data,
        }
        for key, attribute in (
            ("releasable_to", "releasableto"),
            ("pii_releasable_to", "piireleasableto"),
        ):
            if raw.get(key) is not None:
                event[attribute] = raw[key]
        return event

    def dump(self, raw: Any) -> str:
        return json.dumps(raw, ensure_ascii=False) if not isinstance(raw, str) else raw

    def load(self, text: str) -> Any:
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise RowInvalid([("(row)", f"not JSON: {exc.msg}")]) from None


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected text, not {value!r}")
    return value


def _case_number(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"expected text or a number, not {value!r}")
    return str(value).strip()


def _items(items: object, p: Problems) -> list[dict[str, Any]]:
    if not isinstance(items, list) or not items:
        p.add("items", "required: a list of at least one {substance, amount, uom}")
        return []
    drugs = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            p.add(f"items.{i}", "expected an object {substance, amount, uom}")
            continue
        drugs.append(
            {
                "substance": p.need(
                    f"items.{i}.substance",
                    item.get("substance"),
                    lambda v: vocab.substance(_str(v)),
                ),
                "quantity": p.need(f"items.{i}.amount", item.get("amount"), parse_quantity),
                "measure": p.need(
                    f"items.{i}.uom", item.get("uom"), lambda v: vocab.measure(_str(v))
                ),
            }
        )
    return drugs


def _suspects(suspects: object, p: Problems) -> list[dict[str, Any]] | None:
    if not isinstance(suspects, list):
        p.add("suspects", "expected a list of {full_name, citizenship, passport}")
        return None
    persons = []
    for i, suspect in enumerate(suspects):
        if not isinstance(suspect, dict):
            p.add(f"suspects.{i}", "expected an object {full_name, citizenship, passport}")
            continue
        person = {"name": p.need(f"suspects.{i}.full_name", suspect.get("full_name"), _str)}
        for key, target in (("citizenship", "nationality"), ("passport", "document")):
            if suspect.get(key) is not None:
                person[target] = suspect[key]
        persons.append(person)
    return persons


def _agencies(value: object) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"expected a list of agency codes, not {value!r}")
    return [v for v in value if v.strip().upper() != "MIA"]
