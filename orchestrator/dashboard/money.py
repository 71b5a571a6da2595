"""A run's money as the dashboard shows it, in Decimal: the equity curves (strategy and
always hedged), drawdown, cumulative funding and fees, the trade history and the
analytics. Floats appear only as chart coordinates (``chart_points``).

Where the figures come from:

- funding, fees, realised PnL, win rate, average hold: the journal's ledger and
  positions (net PnL of a position = funding - fees + its fills' cash, as
  positions.csv has it);
- return, annualised return, max drawdown, per pair: ``summary.json`` as the run
  wrote it (shown as written, never recomputed differently);
- the hourly equity: the run's ``equity.csv`` (a replay writes it at its end, a live
  run or dry run a row at each hourly sample); for a replay from before runs wrote it,
  replayed again from the run's own config and data (deterministic: the same hours
  and the same Decimal values), and shown only when that replay ends at the summary's
  ``ending_equity`` to the last digit;
- Sharpe and Sortino: on the hourly returns of that equity (e[i] / e[i-1] - 1),
  annualised by sqrt(8760), with a risk-free rate of 0.
"""

from __future__ import annotations

import csv
import itertools
import json
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio

from machines import FINAL_STATES
from orchestrator import config_file
from orchestrator.config import Config, ConfigError, Loaded
from orchestrator.journal.reader import JournalView
from orchestrator.journal.status import LABEL, LAST_CYCLE, SUMMARY_FILE
from orchestrator.market.recorded import DataError
from orchestrator.models import ZERO
from orchestrator.money import exact
from orchestrator.output import plots
from orchestrator.output.report import EQUITY_FILE
from orchestrator.replay.session import prepare, replay_both
from orchestrator.trading.figures import max_drawdown

HOURS_A_YEAR = Decimal(8760)


@dataclass
class Series:
    times: list[int]  # ms
    values: list[Decimal]


@dataclass
class Curves:
    strategy: Series | None
    baseline: Series | None
    note: str  # where the curves come from, or why there are none


@dataclass
class Trade:
    id: str
    pair: str
    state: str
    opened_ms: int | None
    closed_ms: int | None
    funding: Decimal
    fees: Decimal
    price_pnl: Decimal
    net: Decimal  # realised: funding - fees + price PnL
    cumulative: Decimal  # the net of every trade closed up to this one


@dataclass
class PairStats:
    trades: int = 0
    wins: int = 0
    net: Decimal = ZERO
    hours: Decimal = ZERO


@dataclass
class Money:
    quote: str
    summary: dict[str, Any] | None
    curves: Curves
    funding: Series  # cumulative, from the ledger
    fees: Series  # cumulative, paid (positive)
    trades: list[Trade]  # positions held that ended, by close time
    per_pair: dict[str, PairStats] = field(default_factory=dict)
    sharpe: Decimal | None = None
    sortino: Decimal | None = None
    hourly_returns: int = 0
    max_drawdown: Decimal | None = None  # of the curve shown (equals the summary's)

    @property
    def wins(self) -> int:
        return sum(1 for t in self.trades if t.net > 0)

    @property
    def win_rate(self) -> Decimal | None:
        return Decimal(self.wins) / len(self.trades) if self.trades else None

    @property
    def average_hold_hours(self) -> Decimal | None:
        held = [
            Decimal(t.closed_ms - t.opened_ms) / 3_600_000
            for t in self.trades
            if t.opened_ms is not None and t.closed_ms is not None
        ]
        return sum(held, ZERO) / len(held) if held else None


def read_money(run: Path, view: JournalView) -> Money:
    labels = view.ledger_counts()
    label = LABEL if LABEL in labels or not labels else next(iter(labels))
    summary = _summary(run)
    with exact():
        funding, fees, sums = _ledger_series(view, label)
        trades, per_pair = _trades(view, sums)
        curves = saved_curves(run) or replayed_curves(run, view, summary)
        money = Money(
            quote=str((summary or {}).get("quote") or _quote(view)),
            summary=summary,
            curves=curves,
            funding=funding,
            fees=fees,
            trades=trades,
            per_pair=per_pair,
        )
        if curves.strategy is not None:
            values = curves.strategy.values
            money.max_drawdown = max_drawdown(values)
            money.sharpe, money.sortino, money.hourly_returns = ratios(values)
    return money


def _summary(run: Path) -> dict[str, Any] | None:
    try:
        value = json.loads((run / SUMMARY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _quote(view: JournalView) -> str:
    for p in view.positions_page(None, 0, 1)[1]:
        return p.spot_symbol.partition("/")[2] or "USDT"
    return "USDT"


def _ledger_series(
    view: JournalView, label: str
) -> tuple[Series, Series, dict[tuple[str, str], Decimal]]:
    """Cumulative funding and fees over time, and each position's sums by kind."""
    funding, fees = Series([], []), Series([], [])
    total_funding = total_fees = ZERO
    sums: dict[tuple[str, str], Decimal] = {}
    for time_ms, position_id, kind, text in view.amounts(label, ("fill", "fee", "funding")):
        amount = Decimal(text)
        sums[(position_id, kind)] = sums.get((position_id, kind), ZERO) + amount
        if kind == "funding":
            total_funding += amount
            funding.times.append(time_ms)
            funding.values.append(total_funding)
        elif kind == "fee":
            total_fees -= amount
            fees.times.append(time_ms)
            fees.values.append(total_fees)
    return funding, fees, sums


def _trades(
    view: JournalView, sums: dict[tuple[str, str], Decimal]
) -> tuple[list[Trade], dict[str, PairStats]]:
    """Every position held (opened) that has ended, in the order they ended."""
    ended = []
    for p in view.positions():
        if p.state not in FINAL_STATES or p.opened_at is None:
            continue
        closed = int(p.closed_at.timestamp() * 1000) if p.closed_at else None
        funding = sums.get((p.id, "funding"), ZERO)
        fees = -sums.get((p.id, "fee"), ZERO)
        price = sums.get((p.id, "fill"), ZERO)
        ended.append(
            Trade(
                id=p.id,
                pair=p.spot_symbol.replace("/", ""),
                state=str(p.state),
                opened_ms=int(p.opened_at.timestamp() * 1000),
                closed_ms=closed,
                funding=funding,
                fees=fees,
                price_pnl=price,
                net=funding - fees + price,
                cumulative=ZERO,
            )
        )
    ended.sort(key=lambda t: (t.closed_ms or 0, t.id))
    total = ZERO
    per_pair: dict[str, PairStats] = {}
    for t in ended:
        total += t.net
        t.cumulative = total
        stats = per_pair.setdefault(t.pair, PairStats())
        stats.trades += 1
        stats.wins += t.net > 0
        stats.net += t.net
        if t.opened_ms is not None and t.closed_ms is not None:
            stats.hours += Decimal(t.closed_ms - t.opened_ms) / 3_600_000
    return ended, per_pair


def ratios(values: Sequence[Decimal]) -> tuple[Decimal | None, Decimal | None, int]:
    """(Sharpe, Sortino, how many hourly returns): the mean hourly return over their
    standard deviation (over the root mean square of the negative ones: downside
    deviation), times sqrt(8760); risk-free rate 0. None when undefined."""
    returns = [b / a - 1 for a, b in itertools.pairwise(values) if a]
    n = len(returns)
    if n < 2:
        return None, None, n
    mean = sum(returns, ZERO) / n
    variance = sum(((r - mean) ** 2 for r in returns), ZERO) / (n - 1)
    year = HOURS_A_YEAR.sqrt()
    sharpe = mean / variance.sqrt() * year if variance else None
    downside = sum((r * r for r in returns if r < 0), ZERO) / n
    sortino = mean / downside.sqrt() * year if downside else None
    return sharpe, sortino, n


def drawdown(values: Sequence[Decimal]) -> list[Decimal]:
    """At each point, how far below its highest so far, as a fraction of that high."""
    peak: Decimal | None = None
    out = []
    for v in values:
        if peak is None or v > peak:
            peak = v
        out.append((peak - v) / peak if peak > 0 else ZERO)
    return out


# -- the curves


class _Never:
    def is_set(self) -> bool:
        return False


def saved_curves(run: Path) -> Curves | None:
    """The hourly equity the run wrote (equity.csv: a replay's at its end, a live run's
    as it goes); None when it wrote none (a run from before it did)."""
    try:
        with (run / EQUITY_FILE).open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except OSError:
        return None
    strategy, hedged = Series([], []), Series([], [])
    skipped = 0
    for row in rows[1:]:
        try:
            t, value = int(row[0]), Decimal(row[1])
            other = Decimal(row[2]) if len(row) > 2 and row[2] else None
        except (IndexError, ValueError, ArithmeticError):
            skipped += 1  # a line cut short by a crash, say
            continue
        strategy.times.append(t)
        strategy.values.append(value)
        if other is not None:
            hedged.times.append(t)
            hedged.values.append(other)
    note = f"the run's {EQUITY_FILE}: its equity sampled every hour as it went"
    if skipped:
        note += f" ({skipped} unreadable lines left out)"
    return Curves(strategy if strategy.times else None, hedged if hedged.times else None, note)


def replayed_curves(run: Path, view: JournalView, summary: dict[str, Any] | None) -> Curves:
    """The hourly equity of a finished replay and of its always-hedged baseline,
    replayed again from the run's config and recorded data (see the module's note)."""
    meta = view.meta()
    if meta.get("mode") != "paper" or LAST_CYCLE in meta:
        return Curves(
            None,
            None,
            "no equity.csv yet: a live run or dry run writes a row at each hourly sample",
        )
    if summary is None:
        return Curves(None, None, "the run has not finished: no summary.json yet")
    if summary.get("interrupted"):
        return Curves(None, None, "the run was stopped early: its curve cannot be replayed")
    try:
        config = config_file.decode(meta.get("config", ""), Config)
        loaded = Loaded(config, Path(meta.get("config_path") or run / "config.yaml"))
        prepared = prepare(loaded)
        result, baseline = anyio.run(replay_both, prepared, lambda label: _quiet, _Never())
    except (ConfigError, DataError, config_file.Invalid, OSError) as exc:
        return Curves(None, None, f"the replay cannot be replayed again here: {exc}")
    expected = Decimal(str(summary.get("ending_equity")))
    if result.ending_equity != expected:
        return Curves(
            None,
            None,
            f"replayed again, it ends at {result.ending_equity}, not at summary.json's "
            f"{expected} (other data or another version): not shown",
        )
    strategy = Series([t for t, _ in result.equity], [v for _, v in result.equity])
    hedged = Series([t for t, _ in baseline.equity], [v for _, v in baseline.equity])
    note = (
        "replayed again from the run's config and data: it ends at summary.json's "
        "ending_equity to the last digit"
    )
    return Curves(strategy, hedged, note)


def _quiet(done: int, total: int) -> None:
    return None


def chart_points(series: Series, most: int = plots.MOST_POINTS) -> list[int]:
    """Which points of ``series`` to draw (``plots.chart_points``: each stretch's first,
    lowest, highest and last)."""
    return plots.chart_points(series.values, most)


def at(series: Series, time_ms: int) -> Decimal | None:
    """The series' value at ``time_ms`` (its last point at or before it)."""
    i = bisect_right(series.times, time_ms)
    return series.values[i - 1] if i else None
