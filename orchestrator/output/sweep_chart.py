"""A sweep's chart: self-contained HTML (inline SVG, no script, no network).

Two panels: the out-of-sample equity of the search beside the base config and
the always-hedged baseline, the test windows stitched (each window's start
marked); and the objective across the parameter space: one row per parameter
set, one column per walk-forward step's train window, the chosen set of each
step outlined.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from orchestrator.sweep.params import describe
from orchestrator.sweep.plan import Plan
from orchestrator.sweep.report import Stitched, SweepSummary
from orchestrator.sweep.search import SweepRun

WIDTH, HEIGHT, PAD = 1100, 300, 84
ROW, MOST_ROWS = 16, 60
COLOURS = {"search": "#1f77b4", "base config": "#ff7f0e", "always hedged": "#2ca02c"}


def _points(curve: Sequence[tuple[int, Decimal]], most: int = 2000) -> list[tuple[int, float]]:
    step = max(1, len(curve) // most)
    kept = list(curve[::step])
    if curve and kept[-1] != curve[-1]:
        kept.append(curve[-1])
    return [(t, float(v)) for t, v in kept]  # float: pixels only, never money


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def _equity_panel(stitched: Stitched) -> str:
    series = {
        "search": _points(stitched.search),
        "base config": _points(stitched.base),
        "always hedged": _points(stitched.always_hedged),
    }
    values = [v for pts in series.values() for _, v in pts]
    times = [t for pts in series.values() for t, _ in pts]
    if not values:
        return "<p>No test window finished: no out-of-sample curve.</p>"
    lo, hi = min(values), max(values)
    if hi == lo:
        hi, lo = hi + 1, lo - 1
    t0, t1 = min(times), max(times)
    span = max(t1 - t0, 1)

    def x(t: int) -> float:
        return PAD + (t - t0) / span * (WIDTH - 2 * PAD)

    def y(v: float) -> float:
        return HEIGHT - PAD / 2 - (v - lo) / (hi - lo) * (HEIGHT - PAD)

    parts = [f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img">']
    for v in (lo, (lo + hi) / 2, hi):
        parts.append(
            f'<line x1="{PAD}" x2="{WIDTH - PAD}" y1="{y(v):.1f}" y2="{y(v):.1f}" class="grid"/>'
            f'<text x="{PAD - 4}" y="{y(v) + 4:.1f}" text-anchor="end">{v:,.0f}</text>'
        )
    for edge in stitched.edges:
        parts.append(
            f'<line x1="{x(edge):.1f}" x2="{x(edge):.1f}" y1="{PAD / 2}" '
            f'y2="{HEIGHT - PAD / 2}" class="edge"/>'
            f'<text x="{x(edge) + 3:.1f}" y="{PAD / 2 + 10}">{_day(edge)}</text>'
        )
    parts.append(f'<text x="{WIDTH - PAD}" y="{HEIGHT - 4}" text-anchor="end">{_day(t1)}</text>')
    for i, (label, pts) in enumerate(series.items()):
        path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in pts)
        colour = COLOURS[label]
        parts.append(
            f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5"/>'
        )
        left = PAD + 10 + i * 160
        parts.append(
            f'<line x1="{left}" x2="{left + 24}" y1="{PAD / 2 - 16}" y2="{PAD / 2 - 16}" '
            f'stroke="{colour}" stroke-width="3"/>'
            f'<text x="{left + 30}" y="{PAD / 2 - 12}" style="fill:{colour}">'
            f"{html.escape(label)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _colour(value: float, scale: float) -> str:
    """Blue above zero, red below, white at zero."""
    share = max(-1.0, min(1.0, value / scale)) if scale else 0.0
    fade = int(255 * (1 - abs(share)))
    return f"rgb({fade},{fade},255)" if share >= 0 else f"rgb(255,{fade},{fade})"


def _objective_panel(plan: Plan, run: SweepRun, summary: SweepSummary) -> str:
    steps = [s.name for s in plan.steps]
    sets = range(len(plan.sets.sets))
    cells: dict[tuple[int, str], float] = {}
    for step in steps:
        for p in sets:
            row = run.rows.get(f"{step}-train-p{p:04d}")
            if row is not None:
                cells[(p, step)] = float(row["objective"])  # colour only
    if not cells:
        return "<p>No train trial finished.</p>"
    mean = {
        p: sum(v for (q, _), v in cells.items() if q == p)
        / max(1, sum(1 for (q, _) in cells if q == p))
        for p in sets
    }
    shown = sorted(sets, key=lambda p: -mean[p])[:MOST_ROWS]
    note = (
        ""
        if len(shown) == len(sets)
        else f"<p>The {MOST_ROWS} sets with the best mean objective of {len(sets)}.</p>"
    )
    chosen = {(c.set, c.step) for c in run.choices.values() if c.set is not None}
    scale = max(abs(v) for v in cells.values()) or 1.0
    labels = {p: describe(plan.sets.paths, list(plan.set_text(p))) for p in shown}
    label_width = int(max(len(t) for t in labels.values()) * 6.3) + 12
    cell = max(50, min(110, (WIDTH - label_width) // max(1, len(steps))))
    height = ROW * (len(shown) + 2)
    parts = [f'<svg viewBox="0 0 {label_width + cell * len(steps) + 10} {height}" role="img">']
    for j, step in enumerate(steps):
        parts.append(
            f'<text x="{label_width + j * cell + cell / 2}" y="{ROW - 3}" '
            f'text-anchor="middle">step {html.escape(step)}</text>'
        )
    for i, p in enumerate(shown):
        top = ROW * (i + 1)
        label = labels[p]
        parts.append(
            f'<text x="{label_width - 6}" y="{top + ROW - 4}" text-anchor="end">'
            f"{html.escape(label)}</text>"
        )
        for j, step in enumerate(steps):
            value = cells.get((p, step))
            left = label_width + j * cell
            if value is None:
                fill, title = "#eee", "not run"
            else:
                fill, title = _colour(value, scale), f"{value * 100:+.3f}%"
                if summary.objective == "net_pnl":
                    title = f"{value:,.2f}"
            stroke = ' stroke="#000" stroke-width="2"' if (p, step) in chosen else ""
            parts.append(
                f'<rect x="{left}" y="{top}" width="{cell - 2}" height="{ROW - 2}" '
                f'fill="{fill}"{stroke}><title>{html.escape(title)}</title></rect>'
            )
    parts.append("</svg>")
    darkest = f"{scale:,.2f}" if summary.objective == "net_pnl" else f"{scale * 100:.2f}%"
    note += f"<p>The darkest cells are {html.escape(darkest)} from zero.</p>"
    return note + "".join(parts)


def chart_html(plan: Plan, run: SweepRun, summary: SweepSummary, stitched: Stitched) -> str:
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>sweep {html.escape(summary.sweep_id)}</title><style>"
        "body{font:13px sans-serif;margin:20px}svg{width:100%;height:auto}"
        "text{font-size:11px;fill:#333}.grid{stroke:#ddd}.edge{stroke:#bbb;stroke-dasharray:3 3}"
        "</style></head><body>"
        f"<h1>Sweep {html.escape(summary.sweep_id)}</h1>"
        f"<p><b>{html.escape(summary.verdict)}</b></p>"
        "<h2>Out of sample: the test windows stitched</h2>"
        + _equity_panel(stitched)
        + f"<h2>Objective ({html.escape(summary.objective)}) on each train window</h2>"
        "<p>One row per parameter set, one column per walk-forward step; blue above zero, "
        "red below; the set each step chose is outlined.</p>"
        + _objective_panel(plan, run, summary)
        + "</body></html>"
    )
