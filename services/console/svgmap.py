"""The schematic map of an alert: units where the topology places them, links, and the alert's
origin, recipients and corridor marked. SVG made on the server; pure and deterministic.

Positions come from the topology's ``lat``/``lon`` (town level), projected equirectangularly
(longitude scaled by cos 40°N, the region's middle) and then blended with even spacing in the
same order (:func:`_schematic`), as transit maps do: units crowded around Tashkent spread
out, the empty west shrinks. Units still closer than :data:`MIN_GAP` pixels (a BLO and its
counterpart across the border) are pushed apart, and each label takes the side of its node
that covers the fewest other labels. It is a schematic: it says so, and it draws no boundary.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from markupsafe import Markup, escape

from schemas.topology import Topology

WIDTH = 960
MARGIN = 70
MIN_GAP = 50.0
FONT = 13
CHAR = 7.4
"""Estimated width of one label character at :data:`FONT` pixels."""
_COS = math.cos(math.radians(40.0))
BLEND = 0.5
"""Weight of true position against even spacing (1: geographic, 0: a diagram)."""


@dataclass(frozen=True, slots=True)
class Marks:
    """What the map highlights."""

    origin: str | None = None
    viewer: str | None = None
    recipients: Mapping[str, Collection[str]] | None = None
    """Unit → reasons it received the alert for."""


@dataclass(slots=True)
class _Node:
    unit: str
    x: float
    y: float
    label: str


def _project(topology: Topology) -> list[_Node]:
    placed = [u for u in topology.units.values() if u.lat is not None and u.lon is not None]
    if not placed:
        return []
    xs = _schematic([(u.lon or 0.0) * _COS for u in placed])
    ys = _schematic([-(u.lat or 0.0) for u in placed])
    span_x = max(max(xs) - min(xs), 1e-6)
    scale = (WIDTH - 2 * MARGIN) / span_x
    nodes = []
    for unit, ux, uy in zip(placed, xs, ys, strict=True):
        x = MARGIN + (ux - min(xs)) * scale
        y = MARGIN + (uy - min(ys)) * scale
        foreign = unit.country != _home(topology)
        label = f"{unit.id} ({unit.country})" if foreign else unit.id
        nodes.append(_Node(unit.id, x, y, label))
    _spread(nodes)
    return nodes


def _schematic(values: list[float]) -> list[float]:
    """Half geography, half evenly spaced in the same order: units crowded around a city
    spread out and empty steppe shrinks, while east stays east and north stays north."""
    order = sorted(set(values))
    if len(order) < 2:
        return values
    low, high = order[0], order[-1]
    step = (high - low) / (len(order) - 1)
    rank = {v: low + i * step for i, v in enumerate(order)}
    return [BLEND * v + (1 - BLEND) * rank[v] for v in values]


def _home(topology: Topology) -> str:
    """The country with most units: the deployment's own (foreign units get a country tag)."""
    counts: dict[str, int] = {}
    for unit in topology.units.values():
        counts[unit.country] = counts.get(unit.country, 0) + 1
    return max(sorted(counts), key=lambda c: counts[c])


def _spread(nodes: list[_Node]) -> None:
    """Push apart nodes closer than MIN_GAP, a few deterministic rounds."""
    for _ in range(40):
        moved = False
        for i, a in enumerate(nodes):
            for b in nodes[i + 1 :]:
                dx, dy = b.x - a.x, b.y - a.y
                dist = math.hypot(dx, dy)
                if dist >= MIN_GAP:
                    continue
                if dist < 1e-6:
                    dx, dy, dist = 1.0, 0.0, 1.0
                push = (MIN_GAP - dist) / 2 + 0.5
                ux, uy = dx / dist, dy / dist
                a.x, a.y = a.x - ux * push, a.y - uy * push
                b.x, b.y = b.x + ux * push, b.y + uy * push
                moved = True
        if not moved:
            return


Box = tuple[float, float, float, float]


def _overlap_area(box: Box, others: list[Box]) -> float:
    """How much of ``box`` other boxes cover (0: free; the first free side wins)."""
    x0, y0, x1, y1 = box
    return sum(
        max(0.0, min(x1, b[2]) - max(x0, b[0])) * max(0.0, min(y1, b[3]) - max(y0, b[1]))
        for b in others
    )


def _place_labels(
    nodes: list[_Node], first: Collection[str]
) -> dict[str, tuple[float, float, str]]:
    """Each label's (x, y, anchor) on the first side of its node that is free."""
    taken: list[Box] = [(n.x - 8, n.y - 8, n.x + 8, n.y + 8) for n in nodes]
    placed: dict[str, tuple[float, float, str]] = {}
    order = sorted(nodes, key=lambda n: (n.unit not in first, n.unit))
    for node in order:
        width = len(node.label) * CHAR
        x, y = node.x, node.y
        sides = [
            (x + 12, y + 5, "start", (x + 10, y - 9, x + 13 + width, y + 7)),
            (x - 12, y + 5, "end", (x - 13 - width, y - 9, x - 10, y + 7)),
            (x, y - 14, "middle", (x - width / 2, y - 27, x + width / 2, y - 10)),
            (x, y + 25, "middle", (x - width / 2, y + 11, x + width / 2, y + 28)),
            (x + 9, y - 12, "start", (x + 7, y - 26, x + 10 + width, y - 9)),
            (x + 9, y + 22, "start", (x + 7, y + 8, x + 10 + width, y + 25)),
            (x - 9, y - 12, "end", (x - 10 - width, y - 26, x - 7, y - 9)),
            (x - 9, y + 22, "end", (x - 10 - width, y + 8, x - 7, y + 25)),
        ]
        inside = [s for s in sides if s[3][0] >= 2 and s[3][2] <= WIDTH - 2] or sides
        chosen = min(inside, key=lambda s: _overlap_area(s[3], taken))
        x, y, anchor, box = chosen
        taken.append(box)
        placed[node.unit] = (x, y, anchor)
    return placed


def _corridor_links(topology: Topology, marks: Marks) -> set[tuple[str, str]]:
    """Links of the corridor: between its units (the origin included), one step further from
    the origin each (the corridor is made of shortest paths from it)."""
    recipients = marks.recipients or {}
    on = {u for u, reasons in recipients.items() if "corridor" in reasons}
    if not marks.origin or marks.origin not in topology or not on:
        return set()
    on.add(marks.origin)
    distance = {marks.origin: 0}
    frontier = [marks.origin]
    while frontier:
        following = []
        for unit in frontier:
            for near in sorted(topology.neighbours(unit)):
                if near not in distance:
                    distance[near] = distance[unit] + 1
                    following.append(near)
        frontier = following
    return {
        (a, b)
        for a, b in topology.links
        if a in on and b in on and abs(distance.get(a, -9) - distance.get(b, -9)) == 1
    }


def render_map(topology: Topology, marks: Marks, title: str, description: str) -> Markup:
    """The SVG, with ``title`` and ``description`` for screen readers (already translated)."""
    nodes = _project(topology)
    if not nodes:
        return Markup("")
    by_id = {n.unit: n for n in nodes}
    recipients = marks.recipients or {}
    height = math.ceil(max(n.y for n in nodes) + MARGIN)
    corridor = _corridor_links(topology, marks)
    parts = [
        f'<svg class="map" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-labelledby="map-title map-desc" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="map-title">{escape(title)}</title><desc id="map-desc">{escape(description)}</desc>',
        f'<rect class="map-bg" x="0" y="0" width="{WIDTH}" height="{height}" rx="6"/>',
    ]
    for a, b in topology.links:
        if a in by_id and b in by_id:
            kind = "link corridor" if (a, b) in corridor else "link"
            parts.append(_line(by_id[a], by_id[b], kind))
    for unit in sorted(topology.units):
        other = topology.counterpart(unit)
        if other and unit < other and unit in by_id and other in by_id:
            reached = marks.origin in (unit, other) and (unit in recipients or other in recipients)
            parts.append(
                _line(by_id[unit], by_id[other], "link cross" + (" reached" if reached else ""))
            )
    for node in nodes:
        parts.append(_node(node, marks, recipients))
    labels = _place_labels(nodes, {*recipients, marks.origin or "", marks.viewer or ""})
    for node in nodes:
        x, y, anchor = labels[node.unit]
        strong = node.unit in recipients or node.unit in (marks.origin, marks.viewer)
        cls = "label strong" if strong else "label"
        parts.append(
            f'<text class="{cls}" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">'
            f"{escape(node.label)}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _line(a: _Node, b: _Node, cls: str) -> str:
    return f'<line class="{cls}" x1="{a.x:.1f}" y1="{a.y:.1f}" x2="{b.x:.1f}" y2="{b.y:.1f}"/>'


def _node(node: _Node, marks: Marks, recipients: Mapping[str, Collection[str]]) -> str:
    if node.unit == marks.origin:
        cls, radius = "node origin", 9
    elif node.unit in recipients:
        cls, radius = "node recipient", 7
    else:
        cls, radius = "node", 5
    shape = f'<circle class="{cls}" cx="{node.x:.1f}" cy="{node.y:.1f}" r="{radius}"/>'
    if node.unit == marks.viewer:
        shape += f'<circle class="you" cx="{node.x:.1f}" cy="{node.y:.1f}" r="{radius + 5}"/>'
    return shape
