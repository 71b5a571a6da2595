"""A run's result files and table: ``ledger.csv``, ``positions.csv``, ``equity.csv`` and
the table printed at the end, written from the figures (trading/figures.py), the ledger
and the hourly equity."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path

from orchestrator.files import describe
from orchestrator.trading.figures import POSITION_FIELDS, Figures, Summary, position_figures
from orchestrator.trading.ledger import Ledger, LedgerEntry
from orchestrator.trading.run import RunResult


def write_ledgers(path: Path, ledgers: Sequence[tuple[str, Ledger]]) -> None:
    """Every entry of each (run label, ledger), one CSV; the first column says whose."""
    fields = list(LedgerEntry.__struct_fields__)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["run", *fields])
        for label, ledger in ledgers:
            writer.writerows([label, *row] for row in _rows(ledger.entries, fields))


def _rows(entries: Iterable[LedgerEntry], fields: list[str]) -> Iterable[list[object]]:
    for e in entries:
        yield [getattr(e, name) for name in fields]


EQUITY_FILE = "equity.csv"  # a replay's, written at the end; a live run's, as it goes
EQUITY_FIELDS = ["time_ms", "strategy", "always_hedged"]


def write_equity(path: Path, result: RunResult, baseline: RunResult | None) -> None:
    """The hourly equity of the run (and of its always-hedged baseline, sampled at the
    same instants), exact: one row an hour, in the quote currency."""
    hedged = dict(baseline.equity) if baseline is not None else {}
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(EQUITY_FIELDS)
        writer.writerows([t, v, hedged.get(t, "")] for t, v in result.equity)


class EquityFile:
    """A live run's hourly equity, a row appended as each sample is taken (what the
    dashboard draws while the run goes on; a resumed run appends to it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problem: str | None = None  # the first write that failed: the run goes on

    def append(self, time_ms: int, value: Decimal) -> None:
        try:
            new = not self.path.exists()
            with self.path.open("a", newline="", encoding="utf-8") as f:
                if new:
                    f.write(",".join(EQUITY_FIELDS) + "\n")
                f.write(f"{time_ms},{value},\n")
        except OSError as exc:
            if self.problem is None:
                self.problem = f"{self.path}: a sample could not be written: {describe(exc)}"


def write_positions(path: Path, runs: Sequence[RunResult]) -> None:
    """Every position of each run; the first column says whose (its label)."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["run", *POSITION_FIELDS])
        for result in runs:
            figures = position_figures(result)
            for p in result.positions:
                values = figures[p.id]
                row = [
                    values[name] if name in values else getattr(p, name) for name in POSITION_FIELDS
                ]
                row[-1] = " ".join(p.client_order_ids)
                writer.writerow([result.label, *("" if v is None else v for v in row)])


def _pct(x: Decimal) -> str:
    return f"{x * 100:.2f}%"


def _pct_or_dash(x: Decimal | None) -> str:
    return "-" if x is None else _pct(x)


def _money(x: Decimal) -> str:
    return f"{x:,.2f}"


def format_table(summary: Summary) -> str:
    """The results table, a line on how to read it, and every warning."""
    head = (
        f"{'':10}{'':15}{'positions':>9}{'in mkt':>8}{'funding':>12}{'fees':>11}"
        f"{'price PnL':>12}{'(slippage)':>11}{'net PnL':>12}{'return':>9}{'annual':>9}"
        f"{'max DD':>8}{'cost/pos':>10}{'fund/pos':>10}"
    )
    lines = [head]

    def row(name: str, label: str, f: Figures) -> str:
        return (
            f"{name:10}{label:15}{f.positions:>9}{_pct(f.time_in_market):>8}"
            f"{_money(f.funding):>12}{_money(f.fees):>11}{_money(f.price_pnl):>12}"
            f"{'(' + _money(f.slippage) + ')':>11}{_money(f.net_pnl):>12}{_pct(f.return_):>9}"
            f"{_pct_or_dash(f.annualised_return):>9}{_pct(f.max_drawdown):>8}"
            f"{_money(f.cost_per_position):>10}{_money(f.funding_per_position):>10}"
        )

    for name, f in summary.pairs.items():
        lines.append(row(name, summary.label, f))
        if summary.baseline is not None:
            lines.append(row("", "always hedged", summary.baseline[name]))
    lines.append(row("total", summary.label, summary.total))
    if summary.baseline_total is not None:
        lines.append(row("", "always hedged", summary.baseline_total))
    lines.append(
        "net PnL = funding - fees + price PnL. (slippage) is already inside price PnL: "
        "do not subtract it again.\ncost/pos: fees and slippage per position held (failed "
        "attempts included); fund/pos: funding earned per position held."
    )
    lines += [f"warning: {w}" for w in summary.alerts]
    return "\n".join(lines)
