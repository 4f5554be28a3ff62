"""Bar charts as SVG made on the server: no script, no inline style, a table beside each.

Pure and deterministic. Every value is written next to its bar (nobody has to read a scale
at 3 a.m.), so the chart needs no axis; the table under it carries the same numbers for
screen readers, copying and the CSV.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from markupsafe import Markup, escape

WIDTH = 720
BAR = 22
GAP = 10
LABEL_WIDTH = 190
VALUE_WIDTH = 110


def bar_chart(
    bars: Sequence[tuple[str, float]],
    title: str,
    description: str,
    number: Callable[[float], str],
    chart_id: str,
) -> Markup:
    """Horizontal bars, largest first as given; ``number`` formats each value for the reader."""
    if not bars:
        return Markup("")
    height = len(bars) * (BAR + GAP) + GAP
    top = max(value for _, value in bars) or 1.0
    room = WIDTH - LABEL_WIDTH - VALUE_WIDTH
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(description)}</desc>',
    ]
    for index, (label, value) in enumerate(bars):
        y = GAP + index * (BAR + GAP)
        length = max(room * value / top, 2.0) if value > 0 else 0.0
        parts.append(
            f'<text class="chart-label" x="{LABEL_WIDTH - 10}" y="{y + BAR * 0.7:.1f}" '
            f'text-anchor="end">{escape(label)}</text>'
            f'<rect class="bar" x="{LABEL_WIDTH}" y="{y}" width="{length:.1f}" height="{BAR}" rx="2"/>'
            f'<text class="chart-value" x="{LABEL_WIDTH + length + 8:.1f}" '
            f'y="{y + BAR * 0.7:.1f}">{escape(number(value))}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
