"""border-xml: Border Troops alert messages."""

from __future__ import annotations

from importlib import resources

from schemas.alerts import AlertCancelled, AlertRaised
from tests.unit.adapter_helpers import convert, errors, event

ALERT = """<alert number="2024/0091" issued="2024-03-14T06:10:00+05:00" post="Ойбек" precedence="срочно">
  <summary>KAMAZ truck suspected of carrying heroin</summary>
  <route>TJ UZ KZ</route>
  <vehicle plate="01 TJ 000 AA">KAMAZ 5320</vehicle>
  <person nationality="TJ" document="P-0000">Example Driver</person>
  <window from="2024-03-14T08:00:00+05:00" until="2024-03-14T20:00:00+05:00"/>
  <recipient>IMT Gulistan</recipient>
  <releasable>UZ,TJ</releasable>
</alert>"""


def messages(*body: str) -> str:
    """A document holding these messages."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<messages>\n' + "\n".join(body) + "\n</messages>\n"
    )


def test_the_sample_maps_every_message() -> None:
    sample = resources.files("services.ingest.adapters") / "samples" / "border-alerts.xml"
    outcomes = convert("border-xml", sample.read_bytes())
    assert len(outcomes) == 4
    assert all(not isinstance(o, dict) for o in outcomes.values()), outcomes


def test_an_alert_becomes_alert_raised() -> None:
    ev = event(convert("border-xml", messages(ALERT))[1])
    assert (ev.id, ev.source, ev.type) == ("BT-2024/0091", "/units/BLO-OYBEK", "alert.raised")
    data = ev.data
    assert isinstance(data, AlertRaised)
    assert data.severity == "urgent"
    assert data.route == ("TJ", "UZ", "KZ")
    assert data.recipients == ("IMT-GULISTAN",)
    assert data.vehicles[0].plate == "01 TJ 000 AA"
    assert data.persons is not None
    assert data.persons[0].name == "Example Driver"
    assert data.window is not None
    assert ev.releasableto == "UZ,TJ"


def test_a_cancel_refers_to_its_alert() -> None:
    cancel = ('<cancel number="2024/0094" ref="2024/0091" issued="2024-03-16 09:00" post="Oybek BCP">'
              "<reason>false alarm</reason></cancel>")  # fmt: skip
    ev = event(convert("border-xml", messages(cancel))[1])
    assert (ev.type, ev.subject) == ("alert.cancelled", "BT-2024/0091")
    assert isinstance(ev.data, AlertCancelled)
    assert ev.data.reason == "false alarm"


def test_every_kind_of_bad_message_is_reported_and_the_file_goes_on() -> None:
    out = convert(
        "border-xml",
        messages(
            "<alert/>",  # 1: everything missing
            '<alert number="2" issued="soon" post="Atlantis" precedence="whenever"><summary>x</summary>'
            "<route>TJ Uzbekistan</route><vehicle/><recipient>Nowhere</recipient></alert>",  # 2
            '<alert number="3" issued="2024-03-14T06:10:00Z" post="Oybek" precedence="flash">'
            '<summary>x</summary><window from="2024-03-14T08:00:00Z" until="2024-03-14T07:00:00Z"/>'
            "</alert>",  # 3: the schema's own error (window order)
            '<cancel number="4" issued="2024-03-14T06:10:00Z" post="Oybek"/>',  # 4: no ref, reason
            "<telegram>hello</telegram>",  # 5: unknown kind
            ALERT,  # 6: good
        ),
    )
    assert set(errors(out[1])) == {"number", "post", "issued", "precedence", "summary"}
    assert set(errors(out[2])) == {"issued", "post", "precedence", "route", "vehicle.0.plate",
                                   "recipient.0"}  # fmt: skip
    assert set(errors(out[3])) == {"window.until"}
    assert set(errors(out[4])) == {"reason", "ref"}
    assert "unknown message <telegram>" in errors(out[5])["(row)"]
    assert event(out[6]).id == "BT-2024/0091"


def test_broken_xml_keeps_the_messages_before_the_break() -> None:
    out = convert("border-xml", messages(ALERT, "<alert number='2'>").removesuffix("</messages>\n"))
    assert event(out[1]).id == "BT-2024/0091"
    assert "not well-formed XML at line" in errors(out[2])["(row)"]


def test_entity_declarations_are_refused() -> None:
    bomb = ('<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaaaaaaaa">'
            '<!ENTITY b "&a;&a;&a;&a;&a;">]><messages>&b;</messages>')  # fmt: skip
    out = convert("border-xml", bomb)
    assert list(out) == [1]
    assert "refused" in errors(out[1])["(row)"]


def test_a_summary_wrapped_over_lines_is_one_line() -> None:
    """XML element text is often pretty-printed; the schema's one-line fields refuse line
    breaks, so the adapter folds the whitespace of the one-line ones (notes keep theirs)."""
    wrapped = ALERT.replace(
        "<summary>KAMAZ truck suspected of carrying heroin</summary>",
        "<summary>\n    KAMAZ truck suspected\n    of carrying heroin\n  </summary>"
        "<consignment>20 kg\n  in cotton bales</consignment>",
    ).replace(">Example Driver<", ">Example\n   Driver<")
    ev = event(convert("border-xml", messages(wrapped))[1])
    assert isinstance(ev.data, AlertRaised)
    assert ev.data.summary == "KAMAZ truck suspected of carrying heroin"
    assert ev.data.persons is not None
    assert ev.data.persons[0].name == "Example Driver"
    assert ev.data.consignment == "20 kg\n  in cotton bales"
