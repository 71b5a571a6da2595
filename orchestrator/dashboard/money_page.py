"""The money page: charts (specs embedded in the page, drawn by output/charts/charts.js on
uPlot, as a run's chart.html is), the
analytics, the figures per pair and the trade history, a page at a time."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode

from orchestrator.dashboard.money import Money, Series, drawdown
from orchestrator.dashboard.pages import esc, money, percent, table
from orchestrator.journal.status import time_text
from orchestrator.output import plots

TRADES_PAGE = 50
SUMMARY_FIGURES = (
    ("positions", "positions held", "int"),
    ("funding", "funding", "money"),
    ("fees", "fees", "money"),
    ("price_pnl", "price PnL", "money"),
    ("net_pnl", "net PnL", "money"),
    ("return", "return", "percent"),
    ("annualised_return", "annualised", "percent"),
    ("max_drawdown", "max drawdown", "percent"),
)


def charts_data(m: Money) -> dict[str, plots.Spec | None]:
    """Each chart's spec, built as a run's chart.html builds its own (plots.panel:
    downsampled server-side, every curve's lowest and highest points kept)."""
    q = m.quote
    runs = [("strategy", plots.LINES[0], m.curves.strategy)]
    runs.append(("always hedged", plots.LINES[1], m.curves.baseline))
    curves = [(label, colour, s) for label, colour, s in runs if s is not None]

    def points(series: Series) -> list[tuple[int, Decimal]]:
        return list(zip(series.times, series.values, strict=True))

    def fall(series: Series) -> list[tuple[int, Decimal]]:  # as a negative percentage
        return list(zip(series.times, (-v * 100 for v in drawdown(series.values)), strict=True))

    return {
        "equity": plots.panel(
            f"Equity ({q}), strategy beside always hedged",
            [(label, colour, points(s)) for label, colour, s in curves],
        ),
        "drawdown": plots.panel(
            "Drawdown from the highest equity so far (%)",
            [(label, colour, fall(s)) for label, colour, s in curves],
            "percent",
        ),
        "funding": plots.panel(
            f"Cumulative funding ({q})", [("cumulative funding", plots.LINES[0], points(m.funding))]
        ),
        "fees": plots.panel(
            f"Cumulative fees paid ({q})", [("cumulative fees", plots.LINES[0], points(m.fees))]
        ),
    }


def money_page(run: str, m: Money, offset: int) -> str:
    summary = m.summary or {}
    parts = [
        f'<p class="note">Equity: {esc(m.curves.note)}.</p>',
        '<div id="charts">',
        *(
            f'<div class="chart" id="chart-{name}" data-title="{esc(title)}"></div>'
            for name, title in (
                ("equity", f"Equity ({m.quote}), strategy beside always hedged"),
                ("drawdown", "Drawdown from the highest equity so far (%)"),
                ("funding", f"Cumulative funding ({m.quote})"),
                ("fees", f"Cumulative fees paid ({m.quote})"),
            )
        ),
        "</div>",
        '<script type="application/json" id="chart-data">'
        + plots.page_json(charts_data(m))
        + "</script>",
        "<h2>Analytics</h2>",
        _analytics(m, summary),
        "<h2>Per pair</h2>",
        _per_pair(m, summary),
        "<h2>Trade history</h2>",
        _trades(run, m, offset),
    ]
    return "".join(parts)


def _analytics(m: Money, summary: dict[str, Any]) -> str:
    total = summary.get("total") or {}
    baseline = summary.get("baseline_total") or {}
    rows = []
    for key, label, kind in SUMMARY_FIGURES:
        cells = [_cell(total.get(key), kind), _cell(baseline.get(key), kind)]
        rows.append(f"<td>{esc(label)}</td>" + "".join(cells))
    return (
        '<p class="note">From the run\'s summary.json (strategy, and always hedged over the '
        "same hours); empty while the run has not finished.</p>"
        + table(["figure", "strategy", "always hedged"], rows, "analytics")
        + table(
            ["Sharpe", "Sortino", "hourly returns", "win rate", "trades", "average hold"],
            [
                _ratio(m.sharpe)
                + _ratio(m.sortino)
                + f'<td class="num">{m.hourly_returns:,}</td>'
                + percent(m.win_rate)
                + f'<td class="num">{len(m.trades):,}</td>'
                + _hours(m.average_hold_hours)
            ],
            "ratios",
        )
        + '<p class="note">Sharpe and Sortino are computed on <b>hourly returns</b> of the '
        "equity curve (e[i] / e[i-1] - 1), annualised by √8760, risk-free rate 0; Sortino "
        "divides by the downside deviation (root mean square of the negative returns). Win "
        "rate: positions held and ended whose net PnL (funding - fees + price PnL) is above "
        "0; failed opens count in the totals, not in the win rate.</p>"
    )


def _cell(value: object, kind: str) -> str:
    if value is None:
        return '<td class="num">-</td>'
    if kind == "money":
        return money(Decimal(str(value)))
    if kind == "percent":
        return percent(value)
    return f'<td class="num" data-exact="{esc(value)}">{esc(value)}</td>'


def _ratio(value: Decimal | None) -> str:
    if value is None:
        return '<td class="num">-</td>'
    return f'<td class="num" data-exact="{esc(value)}">{value:.2f}</td>'


def _hours(value: Decimal | None) -> str:
    if value is None:
        return '<td class="num">-</td>'
    return f'<td class="num" data-exact="{esc(value)}">{value:,.1f} h</td>'


def _per_pair(m: Money, summary: dict[str, Any]) -> str:
    pairs = summary.get("pairs") or {}
    names = sorted(set(pairs) | set(m.per_pair))
    rows = []
    for name in names:
        figures = pairs.get(name) or {}
        stats = m.per_pair.get(name)
        win = None if stats is None or not stats.trades else Decimal(stats.wins) / stats.trades
        hold = None if stats is None or not stats.trades else stats.hours / stats.trades
        rows.append(
            f'<td data-pair="{esc(name)}">{esc(name)}</td>'
            + "".join(_cell(figures.get(k), kind) for k, _, kind in SUMMARY_FIGURES)
            + percent(win)
            + _hours(hold)
        )
    head = ["pair", *(label for _, label, _ in SUMMARY_FIGURES), "win rate", "average hold"]
    return table(head, rows, "pairs")


def _trades(run: str, m: Money, offset: int) -> str:
    offset = max(0, min(offset, max(len(m.trades) - 1, 0)))
    shown = m.trades[offset : offset + TRADES_PAGE]
    rows = [
        f"<td>{esc(t.id)}</td><td>{esc(t.pair)}</td><td>{esc(t.state)}</td>"
        f"<td>{esc(time_text(t.opened_ms))}</td><td>{esc(time_text(t.closed_ms))}</td>"
        f"{money(t.funding, True)}{money(t.fees)}{money(t.price_pnl, True)}"
        f"{money(t.net, True)}{money(t.cumulative, True)}"
        for t in shown
    ]
    base = f"/runs/{quote(run)}/money"
    nav = []
    if offset > 0:
        prev = urlencode({"offset": max(offset - TRADES_PAGE, 0)})
        nav.append(f'<a href="{base}?{prev}" rel="prev">previous</a>')
    if offset + TRADES_PAGE < len(m.trades):
        nxt = urlencode({"offset": offset + TRADES_PAGE})
        nav.append(f'<a href="{base}?{nxt}" rel="next">next</a>')
    head = [
        "id", "pair", "state", "opened", "closed", "funding", "fees", "price PnL",
        f"realised ({m.quote})", "cumulative",
    ]  # fmt: skip
    return (
        table(head, rows, "trades")
        + f'<p class="pager">{len(m.trades):,} trades {" ".join(nav)}</p>'
    )
