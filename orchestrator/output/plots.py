"""The charts the dashboard and a run's chart.html share: what each chart holds (its
``spec``, built here from exact Decimals) and the code that draws it (charts/charts.js on
uPlot, both shipped in charts/; the dashboard serves them, chart.html inlines them).

A spec is JSON: ``{"title", "unit": "money" | "percent", "x": [seconds], "series":
[{"label", "colour", "values": [exact decimal text | null], "marks"?: true,
"notes"?: [text | null]}]}``. Values travel as the Decimal's own text, so a hovered
point shows the run's figure to the last digit; the script turns them into floats only
to place them on the chart.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_right
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

ASSETS = Path(__file__).parent / "charts"
UPLOT_JS = ASSETS / "vendor" / "uplot" / "uPlot.iife.min.js"
UPLOT_CSS = ASSETS / "vendor" / "uplot" / "uPlot.min.css"
CHARTS_JS = ASSETS / "charts.js"
# Lines take these colours in turn; ENTRY and EXIT are kept for markers, so a marker is
# never mistaken for a line.
LINES = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")
ENTRY, EXIT = "#17becf", "#d62728"
MOST_POINTS = 1200  # per curve: what a chart 1,200 px wide can show

Spec = dict[str, Any]
Points = Sequence[tuple[int, Decimal]]  # (time ms, value)
Curve = tuple[str, str, Points]  # label, colour, points


def chart_points(values: Sequence[Decimal], most: int = MOST_POINTS) -> list[int]:
    """Which points to draw: all of a short series; of a long one, in each of
    ``most / 4`` stretches its first, lowest, highest and last (so a drawdown's bottom
    and a peak are never dropped)."""
    n = len(values)
    if n <= most:
        return list(range(n))
    size = math.ceil(n / (most // 4))
    keep: set[int] = set()
    for start in range(0, n, size):
        end = min(start + size, n)
        chunk = range(start, end)
        keep.update(
            (start, end - 1, min(chunk, key=values.__getitem__), max(chunk, key=values.__getitem__))
        )
    return sorted(keep)


def text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def line(label: str, values: Sequence[Decimal | None], colour: str) -> Spec:
    return {"label": label, "colour": colour, "values": [text(v) for v in values]}


def spec(title: str, times_ms: Sequence[int], series: Sequence[Spec], unit: str = "money") -> Spec:
    # float: seconds on uPlot's time axis, a coordinate only
    return {"title": title, "unit": unit, "x": [t / 1000 for t in times_ms], "series": series}


def panel(title: str, curves: Sequence[Curve], unit: str = "money") -> Spec | None:
    """The curves drawn on the union of the times each one's downsampling keeps
    (chart_points), every curve given at each its own value then (its last point
    at or before it): no curve loses its lowest or highest point to another's."""
    # Each curve read once, in order (a run's Curve decodes its values a block at a
    # time: looked up point by point, it decoded a block per point).
    listed = [(label, colour, list(points)) for label, colour, points in curves]
    kept = {i: chart_points([v for _, v in c[2]]) for i, c in enumerate(listed)}
    times = sorted({listed[c][2][i][0] for c, indices in kept.items() for i in indices})
    if not times:
        return None
    lines = [line(label, values_at(points, times), colour) for label, colour, points in listed]
    return spec(title, times, lines, unit)


def values_at(points: Points, times: Sequence[int]) -> list[Decimal | None]:
    """``at(points, t)`` for each of ``times`` (in order), in one walk along the points."""
    found: list[Decimal | None] = []
    value: Decimal | None = None
    j, n = 0, len(points)
    for t in times:
        while j < n and points[j][0] <= t:
            value = points[j][1]
            j += 1
        found.append(value)
    return found


def at(points: Points, t: int) -> Decimal | None:
    """The value at ``t``: the last point at or before it (None before the first)."""
    i = bisect_right(points, t, key=lambda p: p[0])
    return points[i - 1][1] if i else None


def page_json(charts: dict[str, Spec | None]) -> str:
    """The charts as the page embeds them (``<script type="application/json"
    id="chart-data">``), safe inside a script element."""
    return json.dumps({"charts": charts}, separators=(",", ":")).replace("</", "<\\/")


def inline_assets() -> str:
    """uPlot's style and script and charts.js, inline: a page that needs no other file."""
    css = UPLOT_CSS.read_text(encoding="utf-8")
    # "</script" inside a script would end it early: escaped (the same text to JS)
    scripts = [
        p.read_text(encoding="utf-8").replace("</script", "<\\/script")
        for p in (UPLOT_JS, CHARTS_JS)
    ]
    return f"<style>{css}</style>" + "".join(f"<script>{s}</script>" for s in scripts)
