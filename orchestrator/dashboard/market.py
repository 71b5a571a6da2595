"""The market page: the screen's table of every pair of the recorded data (as
``orchestrator screen`` ranks them, at the newest settlement), and a heatmap of funding
rates across the pairs over time (each week's mean settled rate, annualised).

On a live or dry-run config, the venue's market now, read in the background
(live_market.py)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from orchestrator.config import Config, ConfigError, load
from orchestrator.dashboard.pages import esc, percent, table
from orchestrator.market.recorded import DataError
from orchestrator.market.series import Loader
from orchestrator.money import exact
from orchestrator.output.screen import records
from orchestrator.universe.rank import rank
from orchestrator.universe.recorded import default_instant, facts_at, pairs_in

WEEK_MS = 7 * 86_400_000
HOURS_A_YEAR = 8760


@dataclass
class Market:
    note: str  # where it comes from, or why there is nothing
    at_ms: int | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)  # the screen's records
    weeks: list[int] = field(default_factory=list)  # each column's start
    heat: dict[str, dict[int, Decimal]] = field(default_factory=dict)  # pair -> week -> rate
    live: Config | None = None  # a live or dry-run config: its market is read live


def read_market(config_path: Path | None) -> Market:
    if config_path is None or not config_path.is_file():
        return Market("no config.yaml here: start the dashboard where it is (or --config)")
    try:
        loaded = load(config_path)
    except ConfigError as exc:
        return Market(str(exc))
    config = loaded.config
    if config.on_live_market:  # (read in the background: live_market.py)
        return Market("this config trades the live market", live=config)
    data_dir, venue, universe = loaded.data_dir(), config.venue, config.universe
    pairs = pairs_in(data_dir, venue)
    if not pairs:
        return Market(f"no pair in {data_dir} (orchestrator data download fetches them)")
    reach = max(universe.history_days, universe.min_history_days)
    try:
        at_ms = default_instant(data_dir, pairs, reach, venue=venue)
    except DataError as exc:
        return Market(str(exc))
    # In the context the screen command computes in: the same digits.
    facts = facts_at(data_dir, pairs, at_ms, universe.history_days, reach_days=reach,
                     venue=venue)  # fmt: skip
    ranked = rank(facts, universe, config.fees, config.paper.slippage, at_ms)
    market = Market(
        f"recorded data in {data_dir}, as `orchestrator screen` ranks it at the newest "
        f"settlement; net/y = mean settled rate x 8760 / interval over the last "
        f"{universe.history_days} days, less the round trip over {universe.horizon_hours} h",
        at_ms,
        records(ranked),
    )
    intervals = {f.market: f.interval_hours for f in facts}
    for pair in pairs:
        name = pair.spot.replace("/", "")
        try:
            rates = Loader(data_dir, venue, pair.spot, None, None).funding(pair.perp)
        except DataError:
            continue  # said by the screen's table (left out)
        add_heat(market, name, [(r.time_ms, r.rate) for r in rates], intervals.get(name, 8))
    return market


def add_heat(
    market: Market, pair: str, rates: Sequence[tuple[int, Decimal]], interval_hours: int
) -> None:
    """The pair's row of the heatmap: each week's mean settled rate, annualised."""
    weeks: dict[int, list[Decimal]] = {}
    for time_ms, rate in rates:
        weeks.setdefault(time_ms - time_ms % WEEK_MS, []).append(rate)
    if not weeks:
        return
    per_year = Decimal(HOURS_A_YEAR) / interval_hours
    with exact():
        market.heat[pair] = {w: sum(v, Decimal(0)) / len(v) * per_year for w, v in weeks.items()}
    market.weeks = sorted({w for row in market.heat.values() for w in row})


def market_page(m: Market) -> str:
    parts = [f'<p class="note">{esc(m.note)}.</p>']
    if m.rows:
        head = [
            "rank", "pair", "interval h", "net / year", "gross / year", "cost / year",
            "last rate", "predicted", "settlements", "positive", "24 h turnover", "basis",
            "left out",
        ]  # fmt: skip
        body = [
            f'<td class="num">{esc(r["rank"] or "-")}</td><td>{esc(r["pair"])}</td>'
            f'<td class="num">{esc(r["interval_hours"])}</td>'
            + percent(r["net_annualised"])
            + percent(r["gross_annualised"])
            + percent(r["cost_annualised"])
            + _rate(r["last_rate"])
            + _rate(r["predicted_rate"])
            + f'<td class="num">{esc(r["settlements"])}</td>'
            + percent(r["share_positive"])
            + f'<td class="num">{_whole(r["turnover_24h"])}</td>'
            + _rate(r["basis"])
            + f"<td>{esc(r['left_out'] or '')}</td>"
            for r in m.rows
        ]
        parts.append("<h2>Every pair, ranked</h2>" + table(head, body, "screen"))
    if m.heat:
        parts.append("<h2>Funding rates across pairs over time</h2>" + heatmap_svg(m))
    return "".join(parts)


def heatmap_svg(m: Market) -> str:
    """One row per pair, one column per week: the week's mean settled rate annualised,
    red below 0, white at 0, green above, as deep as the largest of either sign; each
    cell's figure in its tooltip, the scale's ends written beside it."""
    cell_w, cell_h, left, top = 9, 18, 90, 22
    values = [v for weeks in m.heat.values() for v in weeks.values()]
    extreme = max((abs(v) for v in values), default=Decimal(1)) or Decimal(1)
    width = left + cell_w * len(m.weeks) + 60  # room for the last month's label
    height = top + cell_h * len(m.heat) + 46
    out = [f'<svg class="heatmap" width="{width}" height="{height}" role="img">']
    column = {w: i for i, w in enumerate(m.weeks)}
    for row, (pair, weeks) in enumerate(sorted(m.heat.items())):
        y = top + row * cell_h
        out.append(f'<text x="{left - 6}" y="{y + 13}" text-anchor="end">{esc(pair)}</text>')
        for week, value in weeks.items():
            x = left + column[week] * cell_w
            day = datetime.fromtimestamp(week / 1000, UTC).strftime("%Y-%m-%d")
            out.append(
                f'<rect x="{x}" y="{y}" width="{cell_w}" height="{cell_h - 2}" '
                f'fill="{_colour(value, extreme)}" data-pair="{esc(pair)}" '
                f'data-exact="{esc(value)}"><title>{esc(pair)} week of {day}: '
                f"{value * 100:+.2f}% a year</title></rect>"
            )
    months: dict[str, int] = {}
    for w in m.weeks:
        label = datetime.fromtimestamp(w / 1000, UTC).strftime("%Y-%m")
        months.setdefault(label, column[w])
    for label, i in list(months.items())[::3]:
        out.append(f'<text x="{left + i * cell_w}" y="14">{html.escape(label)}</text>')
    y = top + cell_h * len(m.heat) + 14
    for i, (share, text) in enumerate(
        ((-1, f"{-extreme * 100:+.1f}%"), (0, "0"), (1, f"{extreme * 100:+.1f}%"))
    ):
        x = left + i * 120
        out.append(
            f'<rect x="{x}" y="{y}" width="14" height="14" '
            f'fill="{_colour(extreme * share, extreme)}" stroke="#999"/>'
            f'<text x="{x + 20}" y="{y + 12}">{text} a year</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _colour(value: Decimal, extreme: Decimal) -> str:
    share = min(abs(float(value / extreme)), 1.0)  # float: a colour, never money
    fade = int(255 - 150 * share)
    return f"rgb(255,{fade},{fade})" if value < 0 else f"rgb({fade},{int(255 - 80 * share)},{fade})"


def _rate(value: str | None) -> str:
    if value is None:
        return '<td class="num">-</td>'
    return f'<td class="num" data-exact="{esc(value)}">{Decimal(value) * 100:+.4f}%</td>'


def _whole(value: str | None) -> str:
    return "-" if value is None else f"{Decimal(value):,.0f}"
