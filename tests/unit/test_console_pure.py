"""The console's pure parts: inbox rows and tabs, the timeline's releasability rules, the
schematic map, the charts and the vendored scripts."""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from schemas.topology import default_topology
from services.console import charts, svgmap, timeline, views
from services.console.render import dom_id, path_id
from services.console.stats import stats_view

NOW = datetime(2026, 3, 7, 12, 0, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"


def _delivery(**over: Any) -> dict[str, Any]:
    base = {
        "alert_id": "A-1", "alert_source": "BLO-OYBEK", "severity": "urgent", "view": "full",
        "reasons": ["neighbour", "corridor"], "state": "open", "escalated": False,
        "delivered_at": (NOW - timedelta(minutes=20)).isoformat(),
        "deadline": (NOW + timedelta(minutes=40)).isoformat(),
        "acknowledged_at": None, "acknowledged_by": None,
        "event": {"tlp": "amber", "releasableto": "UZ,TJ",
                  "data": {"severity": "urgent", "summary": "KAMAZ truck"}},
    }  # fmt: skip
    return {**base, **over}


def test_rows_say_how_long_an_alert_waited_and_whether_it_is_overdue() -> None:
    row = views.row_of(_delivery(), NOW)
    assert (row.open, row.waiting, row.overdue) == (True, timedelta(minutes=20), False)
    assert row.releasable == ["UZ", "TJ"]
    late = views.row_of(_delivery(deadline=(NOW - timedelta(minutes=1)).isoformat()), NOW)
    assert late.overdue
    acked = views.row_of(_delivery(acknowledged_at=NOW.isoformat(), acknowledged_by="x"), NOW)
    assert (acked.open, acked.waiting, acked.overdue) == (False, None, False)
    closed = views.row_of(_delivery(state="closed"), NOW)
    assert (closed.open, closed.waiting) == (False, None)


def test_a_non_nominal_row_counts_the_persons_withheld() -> None:
    event = {"data": {"summary": "x", "persons_count": 2}}
    assert views.row_of(_delivery(event=event, view="non-nominal"), NOW).persons_withheld == 2
    event = {"data": {"summary": "x", "persons": [{"name": "N"}], "persons_count": 1}}
    assert views.row_of(_delivery(event=event), NOW).persons_withheld == 0


def test_tabs_filter_and_count() -> None:
    deliveries = [
        _delivery(alert_id="open"),
        _delivery(alert_id="acked", acknowledged_at=NOW.isoformat()),
        _delivery(alert_id="late", escalated=True),
        _delivery(alert_id="gone", state="cancelled"),
    ]
    inbox = views.build_inbox(deliveries, [{"unit": "X"}], "open", NOW)
    assert [r.alert_id for r in inbox.rows] == ["open", "late"]
    assert inbox.counts == {"open": 2, "acknowledged": 1, "escalated": 1, "all": 4, "notices": 1}
    assert [r.alert_id for r in views.build_inbox(deliveries, [], "all", NOW).rows] == [
        "open", "acked", "late", "gone"
    ]  # fmt: skip


def _entry(
    seq: int, type_: str, source: str, data: dict[str, Any], **extra: Any
) -> tuple[int, str, dict[str, Any]]:
    event = {"type": type_, "source": source, "time": NOW.isoformat(), "data": data, **extra}
    return seq, f"{seq:064x}", event


TRAIL = [
    _entry(1, "alert.raised", "/units/BLO-OYBEK",
           {"summary": "truck", "persons": [{"name": "Secret Name", "document": "P-1"}]},
           releasableto="UZ,TJ"),
    _entry(2, "alert.delivered", "/liaison/notifier",
           {"recipient": "IMT-GULISTAN", "reasons": ["neighbour"], "view": "full"},
           releasableto="UZ,TJ"),
    _entry(3, "alert.delivered", "/liaison/notifier",
           {"recipient": "BLO-FOTEHOBOD", "reasons": ["counterpart"], "view": "non-nominal"},
           releasableto="UZ,TJ"),
    _entry(4, "alert.acknowledged", "/liaison/notifier",
           {"unit": "IMT-GULISTAN", "officer": "gulistan-duty", "note": "patrols told"}),
    _entry(5, "seizure.reported", "/units/IMT-GULISTAN",
           {"drugs": [{"substance": "heroin", "quantity": 20.032, "measure": "kg"}],
            "persons": [{"name": "Secret Name"}]}),
]  # fmt: skip


def test_an_auditor_reads_every_step_and_no_step_carries_a_person() -> None:
    steps = timeline.build(TRAIL, default_topology(), timeline.Viewer())
    assert [s.type for s in steps] == [e["type"] for _, _, e in TRAIL]
    assert steps[3].officer == "gulistan-duty"
    assert "Secret Name" not in repr(steps)
    assert steps[4].drugs == [(20.032, "kg", "heroin")]


def test_a_foreign_officer_sees_only_what_was_released_to_its_country() -> None:
    viewer = timeline.Viewer("BLO-FOTEHOBOD", "TJ")
    steps = timeline.build(TRAIL, default_topology(), viewer)
    # the seizure was not released to TJ; the acknowledgement follows the alert (UZ,TJ),
    # but the officer of another unit is not named to it
    assert [s.seq for s in steps] == [1, 2, 3, 4]
    assert (steps[3].officer, steps[3].text) == (None, None)
    own = timeline.build(TRAIL, default_topology(), timeline.Viewer("IMT-GULISTAN", "UZ"))
    assert own[3].officer == "gulistan-duty"


def test_a_red_alert_shows_an_officer_only_its_own_unit_s_steps() -> None:
    red = [
        (s, h, {**e, "tlp": "red"}) if e["type"] == "alert.raised" else (s, h, e)
        for s, h, e in TRAIL
    ]
    steps = timeline.build(red, default_topology(), timeline.Viewer("IMT-GULISTAN", "UZ"))
    assert [s.seq for s in steps] == [1, 2, 4, 5]


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # well-formed, or this raises


def test_the_map_marks_origin_recipients_corridor_and_viewer() -> None:
    marks = svgmap.Marks(origin="BLO-OYBEK", viewer="IMT-GULISTAN",
                         recipients={"IMT-GULISTAN": ["neighbour", "corridor"],
                                     "IMT-TASHKENT": ["neighbour", "corridor"],
                                     "BLO-FOTEHOBOD": ["counterpart"], "NIAC-UZ": ["coordinator"]})  # fmt: skip
    svg = _parse(svgmap.render_map(default_topology(), marks, "Map & <route>", "desc"))
    assert svg.find(f"{SVG}title").text == "Map & <route>"  # type: ignore[union-attr]
    circles = svg.findall(f"{SVG}circle")
    assert len([c for c in circles if c.get("class") == "node origin"]) == 1
    assert len([c for c in circles if c.get("class") == "node recipient"]) == 4
    assert len([c for c in circles if c.get("class") == "you"]) == 1
    corridor = [ln for ln in svg.findall(f"{SVG}line") if ln.get("class") == "link corridor"]
    assert len(corridor) == 2  # OYBEK-GULISTAN, OYBEK-TASHKENT
    assert any(ln.get("class") == "link cross reached" for ln in svg.findall(f"{SVG}line"))
    labels = [t.text for t in svg.findall(f"{SVG}text")]
    assert "BLO-FOTEHOBOD (TJ)" in labels
    assert "style" not in svgmap.render_map(
        default_topology(), marks, "t", "d"
    )  # CSP: no inline style


def test_map_nodes_do_not_overlap_and_stay_inside() -> None:
    svg = _parse(svgmap.render_map(default_topology(), svgmap.Marks(), "t", "d"))
    width, height = (float(v) for v in svg.get("viewBox", "").split()[2:])
    points = [(float(c.get("cx", 0)), float(c.get("cy", 0))) for c in svg.findall(f"{SVG}circle")]
    assert len(points) == len(default_topology().units)
    for i, (x, y) in enumerate(points):
        assert 0 < x < width
        assert 0 < y < height
        for x2, y2 in points[i + 1 :]:
            assert ((x - x2) ** 2 + (y - y2) ** 2) ** 0.5 >= svgmap.MIN_GAP - 1


def test_a_bar_chart_writes_each_value_and_scales_to_the_largest() -> None:
    svg = _parse(charts.bar_chart([("IMT-GULISTAN", 20.032), ("BLO-OYBEK", 5.0)], "t", "d",
                                  lambda v: f"{v:g}", "c1"))  # fmt: skip
    bars = svg.findall(f"{SVG}rect")
    widths = [float(b.get("width", 0)) for b in bars]
    assert widths[0] == charts.WIDTH - charts.LABEL_WIDTH - charts.VALUE_WIDTH
    assert widths[1] == pytest.approx(widths[0] * 5 / 20.032, abs=0.05)
    assert [t.text for t in svg.findall(f"{SVG}text")] == [
        "IMT-GULISTAN",
        "20.032",
        "BLO-OYBEK",
        "5",
    ]
    assert charts.bar_chart([], "t", "d", str, "c2") == ""


def test_statistics_never_add_different_measures() -> None:
    rows = [
        {"unit": "A", "substance": "heroin", "month": "2026-02", "measure": "kg", "quantity": 2.0, "seizures": 1},
        {"unit": "B", "substance": "heroin", "month": "2026-01", "measure": "kg", "quantity": 5.0, "seizures": 2},
        {"unit": "A", "substance": "tramadol", "month": "2026-01", "measure": "units", "quantity": 900, "seizures": 1},
    ]  # fmt: skip
    view = stats_view(rows)
    assert view.measures == ["kg", "units"]
    by = {(t.dimension, t.measure): t.rows for t in view.tables}
    assert by[("unit", "kg")] == [("B", 5.0, 2), ("A", 2.0, 1)]
    assert by[("month", "kg")] == [("2026-01", 5.0, 2), ("2026-02", 2.0, 1)]
    assert by[("substance", "units")] == [("tramadol", 900.0, 1)]
    assert view.seizures == 4


@pytest.mark.parametrize("alert_id", ["BT-2024/0091", "../../etc", "a?b#c%d", "ориентировка 1"])
def test_alert_ids_become_one_path_segment(alert_id: str) -> None:
    segment = path_id(alert_id)
    assert "/" not in segment
    assert "?" not in segment
    assert "#" not in segment
    assert ".." not in segment.replace("%2F", "/").split("/")[-1] or "/" in alert_id
    assert re.fullmatch(r"a[0-9a-f]{16}", dom_id(alert_id))


VENDORED = {
    "htmx-2.0.11.min.js": "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717",
    "htmx-ext-sse-2.2.4.js": "3b5992a541619babefc4c169505af474df5c3039da51e59b96ccf9241ecd61d2",
}


@pytest.mark.parametrize(("name", "digest"), VENDORED.items())
def test_vendored_scripts_are_the_pinned_files(name: str, digest: str) -> None:
    folder = Path(svgmap.__file__).parent / "static" / "vendor"
    assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
    assert digest in (folder / "VENDORED.md").read_text(encoding="utf-8")


def test_no_template_has_inline_script_or_style() -> None:
    templates = Path(svgmap.__file__).parent / "templates"
    for page in templates.glob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert "<style" not in text, page.name
        assert " style=" not in text, page.name
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), page.name
        assert not re.search(r"\son[a-z]+=", text), page.name
        assert "hx-on" not in text, page.name
