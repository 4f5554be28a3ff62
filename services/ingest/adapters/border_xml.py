"""``border-xml``: alert messages of the Border Troops, as one XML document.

UTF-8 XML, no namespace, no DTD (a document with a DTD or entity
declarations is refused: the file is untrusted input, parsed with
``defusedxml``). The root element holds the messages, in order; a message's
position (1, 2, …) is its row in error reports::

    <messages sender="Border Troops, Syrdarya detachment">
      <alert number="2024/0091" issued="2024-03-14T06:10:00+05:00" post="Ойбек"
             precedence="срочно" tlp="amber">
        <summary>KAMAZ truck suspected of carrying heroin</summary>
        <route>TJ UZ KZ</route>
        <vehicle plate="01 TJ 000 AA">KAMAZ 5320, blue tarpaulin</vehicle>
        <person nationality="TJ" document="P-0000">Example Driver</person>
        <consignment>heroin, about 20 kg, in the spare tyre</consignment>
        <window from="2024-03-14T08:00:00+05:00" until="2024-03-14T20:00:00+05:00"/>
        <recipient>IMT Gulistan</recipient>
        <releasable>UZ,TJ</releasable>
        <pii-releasable>UZ</pii-releasable>
        <expires>2024-03-15T06:00:00+05:00</expires>
      </alert>
      <cancel number="2024/0093" ref="2024/0091" issued="…" post="Oybek BCP">
        <reason>the truck turned back at the border</reason>
      </cancel>
    </messages>

``<alert>`` becomes ``alert.raised``: attributes ``number``, ``issued`` (RFC 3339;
without a zone, Uzbekistan time), ``post`` (``Oybek``, ``Ойбек``, ``BLO-OYBEK``…)
and ``precedence`` (``flash``/``молния``, ``urgent``/``срочно``/``shoshilinch``,
``routine``/``обычно``/``oddiy``) are required, and so is ``<summary>``; the
other children are optional (``vehicle``, ``person`` and ``recipient`` may repeat;
a recipient is a post name or unit id). ``<cancel>`` becomes ``alert.cancelled``
of the alert numbered ``ref``, with its ``<reason>``. Event ids are
``BT-<number>``; a cancellation's subject is ``BT-<ref>``.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import MappingProxyType
from typing import IO, Any
from xml.etree.ElementTree import Element, ParseError, tostring

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring, iterparse

from schemas.topology import Topology
from services.ingest.adapters import vocab
from services.ingest.adapters.base import (
    Problems,
    Record,
    RowInvalid,
    parse_countries,
    parse_timestamp,
    text_or_none,
)

_PRECEDENCE = {
    "flash": ("flash", "молния", "immediate", "favqulodda"),
    "urgent": ("urgent", "срочно", "срочная", "shoshilinch", "шошилинч", "priority"),
    "routine": ("routine", "обычно", "обычная", "oddiy", "оддий", "plain"),
}
PRECEDENCE = {vocab.fold(w): severity for severity, words in _PRECEDENCE.items() for w in words}


class BorderXml:
    """Border Troops alert messages (XML)."""

    name = "border-xml"
    agency = "BORDER-TROOPS"
    fields = MappingProxyType(
        {
            "id": "number",
            "source": "post",
            "time": "issued",
            "subject": "ref",
            "data.severity": "precedence",
            "data.summary": "summary",
            "data.route": "route",
            "data.vehicles": "vehicle",
            "data.persons": "person",
            "data.consignment": "consignment",
            "data.window": "window",
            "data.recipients": "recipient",
            "data.expires_at": "expires",
            "data.reason": "reason",
            "releasableto": "releasable",
            "piireleasableto": "pii-releasable",
        }
    )

    def records(self, file: IO[bytes]) -> Iterator[Record]:
        depth, row, root = 0, 0, None
        try:
            for event, elem in iterparse(file, events=("start", "end"), forbid_dtd=True):
                if event == "start":
                    depth += 1
                    root = elem if depth == 1 else root
                    continue
                depth -= 1
                if depth == 1 and root is not None:
                    row += 1
                    yield Record(row, elem)
                    root.remove(elem)  # a long file is read in constant memory
        except ParseError as exc:
            line, column = exc.position
            yield Record(
                row + 1,
                "",
                f"not well-formed XML at line {line}, column {column + 1}: "
                f"{str(exc).split(':')[0]}; the rest of the file is not read",
            )
        except DefusedXmlException:
            yield Record(
                row + 1,
                "",
                "refused: the document declares a DTD or entities, which"
                " untrusted XML may not; the rest of the file is not read",
            )

    def to_event(self, raw: Any, topology: Topology) -> dict[str, Any]:
        if not isinstance(raw, Element) or raw.tag not in ("alert", "cancel"):
            tag = raw.tag if isinstance(raw, Element) else "?"
            raise RowInvalid([("(row)", f"unknown message <{tag}>: expected <alert> or <cancel>")])
        p = Problems()
        number = p.need("number", raw.get("number"), str.strip)
        unit = p.need("post", raw.get("post"), lambda v: vocab.unit_of_post(v, topology))
        when = p.need("issued", raw.get("issued"), parse_timestamp)
        if raw.tag == "alert":
            kind, subject, data = "alert.raised", None, _alert(raw, topology, p)
        else:
            kind, data = (
                "alert.cancelled",
                {"reason": p.need("reason", raw.findtext("reason"), str)},
            )
            subject = p.need("ref", raw.get("ref"), lambda v: f"BT-{v.strip()}")
        p.check()
        assert when is not None
        event: dict[str, Any] = {
            "specversion": "1.0",
            "id": f"BT-{number}",
            "source": f"/units/{unit}",
            "type": kind,
            "time": when.isoformat(),
            "data": data,
        }
        if subject is not None:
            event["subject"] = subject
        for tag, attribute in (
            ("releasable", "releasableto"),
            ("pii-releasable", "piireleasableto"),
        ):
            if (value := text_or_none(raw.findtext(tag))) is not None:
                event[attribute] = value
        if (tlp := raw.get("tlp")) is not None:
            event["tlp"] = tlp
        return event

    def dump(self, raw: Any) -> str:
        return tostring(raw, encoding="unicode") if isinstance(raw, Element) else str(raw)

    def load(self, text: str) -> Any:
        try:
            return fromstring(text, forbid_dtd=True)
        except (ParseError, DefusedXmlException) as exc:
            raise RowInvalid([("(row)", f"not a well-formed message: {exc}")]) from None


def _severity(value: str) -> str:
    severity = PRECEDENCE.get(vocab.fold(value))
    if severity is None:
        raise ValueError(f"unknown precedence {value!r}: use flash, urgent or routine")
    return severity


def _one_line(text: str) -> str:
    """Element text of a one-line field, its whitespace (pretty-printing) folded to spaces."""
    return " ".join(text.split())


def _alert(raw: Element, topology: Topology, p: Problems) -> dict[str, Any]:
    data: dict[str, Any] = {
        "severity": p.need("precedence", raw.get("precedence"), _severity),
        "summary": p.need("summary", raw.findtext("summary"), _one_line),
    }
    if (route := raw.findtext("route")) is not None:
        data["route"] = p.take("route", lambda: parse_countries(route))
    vehicles = [
        {
            "plate": p.need(f"vehicle.{i}.plate", v.get("plate"), str.strip),
            "description": text_or_none(v.text),
        }
        for i, v in enumerate(raw.findall("vehicle"))
    ]
    persons = [
        {
            "name": p.need(f"person.{i}", v.text, _one_line),
            "nationality": v.get("nationality"),
            "document": v.get("document"),
        }
        for i, v in enumerate(raw.findall("person"))
    ]
    recipients = [
        p.need(f"recipient.{i}", r.text, lambda v: vocab.unit_of_post(v, topology))
        for i, r in enumerate(raw.findall("recipient"))
    ]
    for key, items in (("vehicles", vehicles), ("persons", persons), ("recipients", recipients)):
        if items:
            data[key] = [_no_none(i) if isinstance(i, dict) else i for i in items]
    if (consignment := text_or_none(raw.findtext("consignment"))) is not None:
        data["consignment"] = consignment
    if (window := raw.find("window")) is not None:
        data["window"] = {
            "from": p.need("window.from", window.get("from"), _moment),
            "until": p.need("window.until", window.get("until"), _moment),
        }
    if (expires := raw.findtext("expires")) is not None:
        data["expires_at"] = p.take("expires", lambda: _moment(expires))
    return data


def _moment(value: str) -> str:
    return parse_timestamp(value).isoformat()


def _no_none(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if v is not None}
