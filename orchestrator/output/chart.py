"""A run's chart.html: the dashboard's charts (uPlot and charts.js, see plots.py) in one
self-contained file: both scripts and the data inline, nothing fetched, works offline
opened from disk. The data are the run's exact Decimals, as text."""

from __future__ import annotations

import html
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

from orchestrator.output import plots
from orchestrator.trading.run import RunResult

Points = plots.Points
MOST_PANELS = 12  # a run of more pairs: funding panels for this many (panelled)


def _rates(
    name: str,
    colour: str,
    run_rates: Points,
    entries: Sequence[tuple[int, str]],
    exits: Sequence[tuple[int, str]],
) -> plots.Spec | None:
    """A pair's funding rate per settlement (%), its entries and exits marked on it (at
    the rate last settled when each happened; their reasons in the hover's tooltip)."""
    rates = [(t, v * 100) for t, v in run_rates]
    if not rates:
        return None
    shown = {rates[i][0]: rates[i][1] for i in plots.chart_points([v for _, v in rates])}
    x = sorted(set(shown) | {t for t, _ in (*entries, *exits)})
    series = [plots.line(name, [shown.get(t) for t in x], colour)]
    for label, word, mark_colour, when in (
        ("entries", "enter", plots.ENTRY, entries),
        ("exits", "exit", plots.EXIT, exits),
    ):
        notes: dict[int, list[str]] = {}
        for t, why in when:
            notes.setdefault(t, []).append(f"{word}: {why}")
        # at the rate last settled (0 before the first)
        at = [(plots.at(rates, t) or Decimal(0)) if t in notes else None for t in x]
        mark = plots.line(label, at, mark_colour)
        mark["marks"] = True
        mark["notes"] = ["; ".join(notes[t]) if t in notes else None for t in x]
        series.append(mark)
    return plots.spec(f"{name} funding rate per settlement (%)", x, series, "percent")


def _cumulative_funding(result: RunResult) -> list[tuple[int, Decimal]]:
    total, points = Decimal(0), []
    for e in result.ledger.entries:
        if e.kind == "funding":
            total += e.amount
            points.append((e.time_ms, total))
    return points


def _drawdown(points: Points) -> list[tuple[int, Decimal]]:
    """Below the highest equity so far, as a (negative) percentage of it."""
    peak: Decimal | None = None
    out = []
    for t, v in points:
        if peak is None or v > peak:
            peak = v
        out.append((t, -(peak - v) / peak * 100 if peak > 0 else Decimal(0)))
    return out


def panelled(result: RunResult) -> list[str]:
    """The pairs given a funding panel: every pair of a run of a few; of a run of many
    (pairs: auto), the MOST_PANELS that earned the most funding (200 panels made a 10 MB
    page that took seconds to write and to draw)."""
    names = [run.name for run in result.pairs]
    if len(names) <= MOST_PANELS:
        return names
    earned: dict[str, Decimal] = {}
    for e in result.ledger.entries:
        if e.kind == "funding":
            earned[e.pair] = earned.get(e.pair, Decimal(0)) + e.amount
    return sorted(earned, key=lambda name: (-earned[name], name))[:MOST_PANELS]


def charts(result: RunResult, baseline: RunResult | None) -> dict[str, plots.Spec | None]:
    """Every chart of chart.html, by name: equity, drawdown, cumulative funding (the
    strategy beside always hedged), then each pair's funding rate (``panelled``)."""
    shown = set(panelled(result))
    runs = [(result, plots.LINES[0])] + ([] if baseline is None else [(baseline, plots.LINES[1])])
    q = result.quote
    out = {
        "equity": plots.panel(f"Equity ({q})", [(r.label, c, r.equity) for r, c in runs]),
        "drawdown": plots.panel(
            "Drawdown from the highest equity so far (%)",
            [(r.label, c, _drawdown(r.equity)) for r, c in runs],
            "percent",
        ),
        "funding": plots.panel(
            f"Cumulative funding ({q})", [(r.label, c, _cumulative_funding(r)) for r, c in runs]
        ),
    }
    for i, run in enumerate(result.pairs):
        if run.name not in shown:
            continue
        colour = plots.LINES[(i + 2) % len(plots.LINES)]
        rates = _rates(run.name, colour, run.funding_rates, run.entries, run.exits)
        out[f"rate-{run.name}"] = rates
    return out


def write_chart(path: Path, result: RunResult, baseline: RunResult | None) -> None:
    name = html.escape(path.parent.name)
    found = charts(result, baseline)
    boxes = "".join(
        f'<div class="chart" id="chart-{html.escape(key)}" data-title="{html.escape(key)}"></div>'
        for key in found
    )
    panels = (
        f'<p class="note">{len(result.pairs)} pairs: funding panels for the {MOST_PANELS} that '
        "earned the most funding (the dashboard's market page has every pair's).</p>"
        if len(result.pairs) > MOST_PANELS
        else ""
    )
    page = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>funding-orchestrator run {name}</title><style>"
        "body{font:13px system-ui,sans-serif;margin:24px;max-width:1300px;color:#222}"
        ".note{color:#555}.chart{margin:8px 0 18px}"
        f"</style></head><body><h1>Run {name}</h1>"
        '<p class="note">Hover a chart for its values (the exact figure in the tooltip of '
        "each value), drag to zoom, double-click to reset, click a legend entry to hide its "
        f"line. Cyan points: entries; red: exits.</p>{panels}"
        f'<div id="charts">{boxes}</div>'
        f'<script type="application/json" id="chart-data">{plots.page_json(found)}</script>'
        f"{plots.inline_assets()}<script>FundingCharts.drawAll();</script>"
        "</body></html>\n"
    )
    path.write_text(page, encoding="utf-8")
