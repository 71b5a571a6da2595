"""A self-contained HTML chart of a run: inline SVG, no script, no network."""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from orchestrator.trading.run import RunResult

WIDTH, HEIGHT, PAD = 1100, 240, 84
COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2"]
ENTRY, EXIT = "#17becf", "#d62728"  # markers: no line of the chart has these colours
Series = tuple[str, str, Sequence[tuple[int, Decimal]]]  # label, colour, points


def _thin(points: Sequence[tuple[int, Decimal]], most: int = 2000) -> list[tuple[int, float]]:
    step = max(1, len(points) // most)
    kept = list(points[::step])
    if points and kept[-1] != points[-1]:
        kept.append(points[-1])
    return [(t, float(v)) for t, v in kept]  # float: pixels only, never money


def _panel(
    title: str,
    series: Sequence[Series],
    t0: int,
    t1: int,
    *,
    percent: bool = False,
    marks: Sequence[tuple[int, Decimal, str, str]] = (),
) -> str:
    thinned = [(label, colour, _thin(points)) for label, colour, points in series]
    values = [v for _, _, pts in thinned for _, v in pts] + [float(v) for _, v, _, _ in marks]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if hi == lo:
        hi, lo = hi + 1, lo - 1
    span = max(t1 - t0, 1)

    def x(t: int) -> float:
        return PAD + (t - t0) / span * (WIDTH - 2 * PAD)

    def y(v: float) -> float:
        return HEIGHT - PAD / 2 - (v - lo) / (hi - lo) * (HEIGHT - PAD)

    def fmt(v: float) -> str:
        return f"{v * 100:.3f}%" if percent else f"{v:,.2f}"

    parts = [f'<h2>{html.escape(title)}</h2><svg viewBox="0 0 {WIDTH} {HEIGHT}">']
    for v in (lo, (lo + hi) / 2, hi):
        parts.append(
            f'<line x1="{PAD}" x2="{WIDTH - PAD}" y1="{y(v):.1f}" y2="{y(v):.1f}" class="grid"/>'
            f'<text x="{PAD - 4}" y="{y(v) + 4:.1f}" text-anchor="end">{fmt(v)}</text>'
        )
    for frac in (0.0, 0.5, 1.0):
        t = int(t0 + frac * span)
        day = datetime.fromtimestamp(t / 1000, UTC).strftime("%Y-%m-%d")
        parts.append(f'<text x="{x(t):.1f}" y="{HEIGHT - 4}" text-anchor="middle">{day}</text>')
    for i, (label, colour, pts) in enumerate(thinned):
        path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in pts)
        parts.append(f'<polyline points="{path}" stroke="{colour}" fill="none"/>')
        # style, not the fill attribute: the page's CSS rule for text would win over it
        parts.append(
            f'<rect x="{PAD + 8 + 180 * i}" y="5" width="10" height="10" fill="{colour}"/>'
            f'<text x="{PAD + 22 + 180 * i}" y="14" style="fill:{colour}">'
            f"{html.escape(label)}</text>"
        )
    for t, mark, colour, tip in marks:
        parts.append(
            f'<circle cx="{x(t):.1f}" cy="{y(float(mark)):.1f}" r="3.5" fill="{colour}">'
            f"<title>{html.escape(tip)}</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _cumulative_funding(result: RunResult) -> list[tuple[int, Decimal]]:
    total, points = Decimal(0), []
    for e in result.ledger.entries:
        if e.kind == "funding":
            total += e.amount
            points.append((e.time_ms, total))
    return points


def _drawdown(points: Sequence[tuple[int, Decimal]]) -> list[tuple[int, Decimal]]:
    """Below the highest equity so far, as a (negative) fraction of it."""
    peak: Decimal | None = None
    out = []
    for t, v in points:
        if peak is None or v > peak:
            peak = v
        out.append((t, -(peak - v) / peak if peak > 0 else Decimal(0)))
    return out


def write_chart(path: Path, result: RunResult, baseline: RunResult | None) -> None:
    t0, t1 = result.start_ms, result.end_ms
    runs = [(result, COLOURS[0])] + ([] if baseline is None else [(baseline, COLOURS[1])])
    panels = [
        _panel(f"Equity ({result.quote})", [(r.label, c, r.equity) for r, c in runs], t0, t1),
        _panel(
            "Drawdown from the highest equity so far",
            [(r.label, c, _drawdown(r.equity)) for r, c in runs],
            t0,
            t1,
            percent=True,
        ),
        _panel(
            f"Cumulative funding ({result.quote})",
            [(r.label, c, _cumulative_funding(r)) for r, c in runs],
            t0,
            t1,
        ),
    ]
    for i, run in enumerate(result.pairs):
        rates = dict(run.funding_rates)

        def at(t: int, rates: dict[int, Decimal] = rates) -> Decimal:
            earlier = [k for k in rates if k <= t]
            return rates[max(earlier)] if earlier else Decimal(0)

        marks = [(t, at(t), ENTRY, f"enter: {why}") for t, why in run.entries]
        marks += [(t, at(t), EXIT, f"exit: {why}") for t, why in run.exits]
        panels.append(
            _panel(
                f"{run.name} funding rate per settlement (cyan: entries, red: exits)",
                [(run.name, COLOURS[(i + 2) % len(COLOURS)], run.funding_rates)],
                t0,
                t1,
                percent=True,
                marks=marks,
            )
        )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>funding-orchestrator run {html.escape(path.parent.name)}</title><style>"
        "body{font:13px system-ui,sans-serif;margin:24px;max-width:1150px}"
        "svg{width:100%;height:auto;background:#fafafa}polyline{stroke-width:1.4}"
        ".grid{stroke:#ddd}text{font-size:11px;fill:#444}h2{font-size:15px;margin:18px 0 4px}"
        f"</style></head><body><h1>Run {html.escape(path.parent.name)}</h1>"
        + "".join(panels)
        + "</body></html>\n"
    )
    path.write_text(page, encoding="utf-8")
