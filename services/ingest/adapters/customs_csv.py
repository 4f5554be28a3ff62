"""``customs-csv``: the State Customs Committee's (SCC) seizure register, exported as CSV.

One row per seizure of one substance; the first line names the columns
(any order, any case; columns not listed here are ignored). UTF-8, with or
without a byte-order mark; fields separated by ``;`` (a Russian-locale
spreadsheet's export) or ``,`` — whichever the header uses.

==============  ========  ===================================================
column          required  meaning
==============  ========  ===================================================
reg_no          yes       register number, e.g. ``26-0412/0153``; event id ``SCC-<reg_no>``
date            yes       ``DD.MM.YYYY`` (or ``YYYY-MM-DD``)
time            no        ``HH:MM``; date and time are Uzbekistan time (UTC+5)
post            yes       customs post / BCP: ``Oybek``, ``Ойбек``, ``Oybek BCP``, ``BLO-OYBEK``
substance       yes       ``geroin``/``героин``/``heroin``, ``gashish``/``гашиш``/``hashish``...
quantity        yes       ``20032``, ``20,032`` or ``20.032`` (decimal comma or point)
unit            yes       ``кг``/``kg``, ``г``/``g``, ``мг``, ``л``, ``мл``, ``шт``, ``таб``...
transport       no        e.g. ``truck``
concealment     no        free text
route           no        country codes: ``TJ-UZ-KZ``, ``TJ > UZ > KZ``
detained        no        persons detained (a count)
alert_ref       no        id of the alert that led to the seizure
case_no         no        the criminal case the seizure was handed over under,
                          e.g. ``12-3456/2024``: ``data.case``, which the police
                          report of the same seizure carries too, so that
                          statistics count it once
releasable_to   no        countries the report may reach, e.g. ``UZ,TJ``
==============  ========  ===================================================

Each row becomes a ``seizure.reported`` event from the post's unit, agency
``SCC``, at the seizure's local time; the register number makes the event
id, so importing the register again publishes nothing new.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterator
from types import MappingProxyType
from typing import IO, Any

from schemas.topology import Topology
from services.ingest.adapters import vocab
from services.ingest.adapters.base import (
    FileUnreadable,
    Problems,
    Record,
    RowInvalid,
    parse_count,
    parse_countries,
    parse_local_time,
    parse_quantity,
    text_or_none,
)

REQUIRED = ("reg_no", "date", "post", "substance", "quantity", "unit")
OPTIONAL = (
    "time",
    "transport",
    "concealment",
    "route",
    "detained",
    "alert_ref",
    "case_no",
    "releasable_to",
)


class CustomsCsv:
    """The SCC seizure register (CSV)."""

    name = "customs-csv"
    agency = "SCC"
    fields = MappingProxyType(
        {
            "id": "reg_no",
            "source": "post",
            "time": "date",
            "data.occurred_at": "date",
            "data.drugs.0.substance": "substance",
            "data.drugs.0.quantity": "quantity",
            "data.drugs.0.measure": "unit",
            "data.route": "route",
            "data.transport": "transport",
            "data.concealment": "concealment",
            "data.detained": "detained",
            "data.alert_id": "alert_ref",
            "data.case": "case_no",
            "releasableto": "releasable_to",
        }
    )

    def records(self, file: IO[bytes]) -> Iterator[Record]:
        # surrogateescape: a stray non-UTF-8 byte spoils its row only, not the whole file
        text = io.TextIOWrapper(file, encoding="utf-8-sig", errors="surrogateescape", newline="")
        try:
            yield from self._rows(text)
        finally:
            text.detach()  # the caller owns the file: do not close it with the wrapper

    def _rows(self, text: IO[str]) -> Iterator[Record]:
        first = text.readline()
        delimiter = ";" if first.count(";") >= first.count(",") else ","
        header = [h.strip().lower() for h in next(csv.reader([first], delimiter=delimiter), [])]
        if missing := [c for c in REQUIRED if c not in header]:
            raise FileUnreadable(f"the header lacks column(s) {', '.join(missing)}")
        reader = csv.reader(text, delimiter=delimiter)
        for values in reader:
            row = reader.line_num + 1
            line = delimiter.join(values)
            if not any(v.strip() for v in values):
                continue
            if len(values) != len(header):
                problem = f"has {len(values)} fields, the header has {len(header)}"
            elif _has_undecodable(line):
                problem = "not UTF-8 text: save the register as UTF-8"
            else:
                yield Record(row, dict(zip(header, values, strict=True)))
                continue
            yield Record(row, _clean(line), problem)

    def to_event(self, raw: Any, topology: Topology) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise RowInvalid([("(row)", "not a register row")])
        p = Problems()
        row = {k: text_or_none(v) for k, v in raw.items() if k in REQUIRED + OPTIONAL}
        p.need("reg_no", row.get("reg_no"), str)
        unit = p.need("post", row.get("post"), lambda v: vocab.unit_of_post(v, topology))
        when = p.need("date", row.get("date"), lambda v: parse_local_time(v, row.get("time")))
        drug = {
            "substance": p.need("substance", row.get("substance"), vocab.substance),
            "quantity": p.need("quantity", row.get("quantity"), parse_quantity),
            "measure": p.need("unit", row.get("unit"), vocab.measure),
        }
        data: dict[str, Any] = {"drugs": [drug], "agencies": [self.agency]}
        if row.get("route"):
            data["route"] = p.take("route", lambda: parse_countries(row["route"]))
        if row.get("detained"):
            data["detained"] = p.take("detained", lambda: parse_count(row["detained"]))
        p.check()
        assert when is not None  # checked above
        data |= {"occurred_at": when.isoformat(), "location": {"unit": unit, "bcp": row["post"]}}
        for column, key in (
            ("transport", "transport"),
            ("concealment", "concealment"),
            ("alert_ref", "alert_id"),
            ("case_no", "case"),
        ):
            if row.get(column):
                data[key] = row[column]
        event: dict[str, Any] = {
            "specversion": "1.0",
            "id": f"{self.agency}-{row['reg_no']}",
            "source": f"/units/{unit}",
            "type": "seizure.reported",
            "time": when.isoformat(),
            "data": data,
        }
        if row.get("releasable_to"):
            event["releasableto"] = row["releasable_to"]
        return event

    def dump(self, raw: Any) -> str:
        return json.dumps(raw, ensure_ascii=False) if isinstance(raw, dict) else str(raw)

    def load(self, text: str) -> Any:
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            raise RowInvalid([("(row)", "the row could not be read")]) from None


def _has_undecodable(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def _clean(text: str) -> str:
    """The text with undecodable bytes shown as ``\\xNN``, safe to store and print."""
    return codecs.decode(text.encode("utf-8", "surrogateescape"), "utf-8", "backslashreplace")
