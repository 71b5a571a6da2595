"""The figures a trader judges a run by, per pair and in total, beside the baseline."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import msgspec

from orchestrator.models import ZERO, Position
from orchestrator.run.engine import RunResult

YEAR_MS = Decimal(365 * 24 * 3_600_000)


class Figures(msgspec.Struct, frozen=True):
    positions: int
    hours_in_market: Decimal
    time_in_market: Decimal  # fraction of the window
    funding: Decimal
    fees: Decimal
    slippage: Decimal  # already inside price_pnl; shown to say what crossing the spread cost
    price_pnl: Decimal
    net_pnl: Decimal
    return_: Decimal = msgspec.field(name="return")
    annualised_return: Decimal
    max_drawdown: Decimal  # a fraction of the peak


def annualise(ret: Decimal, span_ms: int) -> Decimal:
    """(1 + r) ** (1 year / span) - 1, in Decimal."""
    if span_ms <= 0 or ret <= -1:
        return ZERO if span_ms <= 0 else Decimal(-1)
    return ((1 + ret).ln() * YEAR_MS / span_ms).exp() - 1


def max_drawdown(values: Sequence[Decimal]) -> Decimal:
    peak, worst = None, ZERO
    for v in values:
        if peak is None or v > peak:
            peak = v
        elif peak > 0:
            worst = max(worst, (peak - v) / peak)
    return worst


def figures(result: RunResult, pair: str | None = None) -> Figures:
    totals = result.ledger.totals(pair)
    span = max(result.end_ms - result.start_ms, 1)
    held: list[Position] = [
        p
        for p in result.positions
        if p.opened_at is not None and (pair is None or p.id.rsplit("-", 1)[0] == pair)
    ]
    end = datetime.fromtimestamp(result.end_ms / 1000, UTC)
    hours = sum(
        (
            Decimal(((p.closed_at or end) - p.opened_at).total_seconds()) / 3600
            for p in held
            if p.opened_at
        ),
        ZERO,
    )
    pairs_in = 1 if pair is not None else max(len(result.pairs), 1)
    start = result.starting_balance
    ret = totals["net_pnl"] / start if start else ZERO
    if pair is None:
        curve = [v for _, v in result.equity]
    else:
        run = next(r for r in result.pairs if r.name == pair)
        curve = [start + v for _, v in run.pnl]
    return Figures(
        positions=len(held),
        hours_in_market=hours.quantize(Decimal("0.01")),
        time_in_market=(hours * 3_600_000 / span / pairs_in),
        funding=totals["funding"],
        fees=totals["fees"],
        slippage=totals["slippage"],
        price_pnl=totals["price_pnl"],
        net_pnl=totals["net_pnl"],
        return_=ret,
        annualised_return=annualise(ret, span),
        max_drawdown=max_drawdown(curve),
    )


class Summary(msgspec.Struct):
    run_id: str
    label: str
    start: datetime
    end: datetime
    events: int
    interrupted: bool
    quote: str
    starting_balance: Decimal
    ending_balance: Decimal
    ledger_balances: bool  # starting + funding - fees + price PnL == ending, exactly
    pairs: dict[str, Figures]
    total: Figures
    baseline: dict[str, Figures]  # always hedged: in at the start, out at the end
    baseline_total: Figures
    positions: dict[str, int]  # count by final state
    warnings: list[str]


def ledger_identity(result: RunResult) -> tuple[Decimal, Decimal]:
    """(starting + funding - fees + price PnL, ending equity): equal to the last digit."""
    t = result.ledger.totals()
    lhs = result.starting_balance + t["funding"] - t["fees"] + t["price_pnl"]
    marks = sum((e.amount for e in result.ledger.entries if e.kind == "mark"), ZERO)
    return lhs, result.ending_balance + marks


def summarise(
    run_id: str, result: RunResult, baseline: RunResult, warnings: Sequence[str]
) -> Summary:
    lhs, rhs = ledger_identity(result)
    states: dict[str, int] = {}
    for p in result.positions:
        key = p.state or "pending"
        states[key] = states.get(key, 0) + 1
    return Summary(
        run_id=run_id,
        label=result.label,
        start=datetime.fromtimestamp(result.start_ms / 1000, UTC),
        end=datetime.fromtimestamp(result.end_ms / 1000, UTC),
        events=result.events,
        interrupted=result.interrupted or baseline.interrupted,
        quote=result.quote,
        starting_balance=result.starting_balance,
        ending_balance=result.ending_balance,
        ledger_balances=lhs == rhs,
        pairs={r.name: figures(result, r.name) for r in result.pairs},
        total=figures(result),
        baseline={r.name: figures(baseline, r.name) for r in baseline.pairs},
        baseline_total=figures(baseline),
        positions=states,
        warnings=list(warnings),
    )


def write_positions(path: Path, positions: Sequence[Position]) -> None:
    fields = [
        "id",
        "spot_symbol",
        "perp_symbol",
        "state",
        "quantity",
        "spot_qty",
        "perp_qty",
        "spot_entry_price",
        "perp_entry_price",
        "entry_fees",
        "exit_fees",
        "created_at",
        "opened_at",
        "closed_at",
        "reason",
        "client_order_ids",
    ]
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(fields)
        for p in positions:
            row = [getattr(p, name) for name in fields]
            row[-1] = " ".join(p.client_order_ids)
            writer.writerow(["" if v is None else v for v in row])


def _pct(x: Decimal) -> str:
    return f"{x * 100:.2f}%"


def _money(x: Decimal) -> str:
    return f"{x:,.2f}"


def format_table(summary: Summary) -> str:
    head = (
        f"{'':10}{'':15}{'positions':>9}{'in mkt':>8}{'funding':>12}{'fees':>11}"
        f"{'slippage':>10}{'price PnL':>12}{'net PnL':>12}{'return':>9}{'annual':>9}{'max DD':>8}"
    )
    lines = [head]

    def row(name: str, label: str, f: Figures) -> str:
        return (
            f"{name:10}{label:15}{f.positions:>9}{_pct(f.time_in_market):>8}"
            f"{_money(f.funding):>12}{_money(f.fees):>11}{_money(f.slippage):>10}"
            f"{_money(f.price_pnl):>12}{_money(f.net_pnl):>12}{_pct(f.return_):>9}"
            f"{_pct(f.annualised_return):>9}{_pct(f.max_drawdown):>8}"
        )

    for name, f in summary.pairs.items():
        lines.append(row(name, "strategy", f))
        lines.append(row("", "always hedged", summary.baseline[name]))
    lines.append(row("total", "strategy", summary.total))
    lines.append(row("", "always hedged", summary.baseline_total))
    return "\n".join(lines)
