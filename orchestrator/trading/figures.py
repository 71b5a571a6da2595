"""The figures a trader judges a run by, per pair and in total, beside the baseline."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

import msgspec

from machines import FINAL_STATES
from orchestrator.fills import exit_prices, hours_held
from orchestrator.models import ZERO, Position
from orchestrator.money import exact
from orchestrator.trading.run import PairRun, RunResult

YEAR_MS = Decimal(365 * 24 * 3_600_000)
# The shortest span a return is annualised over: a few minutes' return raised to a
# year's power (a dry run stopped early) says nothing but -100 % or a number of 50 digits.
ANNUALISED_FROM_MS = 24 * 3_600_000


class Figures(msgspec.Struct, frozen=True):
    positions: int
    hours_in_market: Decimal
    time_in_market: Decimal  # fraction of the pair's own window (summed over pairs in total)
    funding: Decimal
    fees: Decimal
    slippage: Decimal  # already inside price_pnl: what crossing the spread cost, not a cost to add
    price_pnl: Decimal
    net_pnl: Decimal  # funding - fees + price_pnl
    return_: Decimal = msgspec.field(name="return")
    annualised_return: Decimal | None  # None: a span under a day (ANNUALISED_FROM_MS)
    max_drawdown: Decimal  # a fraction of the peak
    # Per position held: what its round trips cost (fees and slippage, failed
    # attempts included) beside what it earned in funding. Did the trades pay?
    cost_per_position: Decimal
    funding_per_position: Decimal


def annualise(ret: Decimal, span_ms: int) -> Decimal:
    """(1 + r) ** (1 year / span) - 1, in Decimal."""
    if span_ms <= 0 or ret <= -1:
        return ZERO if span_ms <= 0 else Decimal(-1)
    return ((1 + ret).ln() * YEAR_MS / span_ms).exp() - 1


def max_drawdown(values: Sequence[Decimal]) -> Decimal:
    """The largest fall from a peak, as a fraction of it: (peak - v) / peak worked out
    once per peak, at the lowest value before the next (the quotient, rounded, grows
    as v falls, so that is the largest of the peak's)."""
    peak: Decimal | None = None
    low: Decimal | None = None  # the lowest value since the peak (None: none yet)
    worst = ZERO
    for v in values:
        if peak is None or v > peak:
            if low is not None and peak is not None and peak > 0:
                worst = max(worst, (peak - low) / peak)
            peak, low = v, None
        elif low is None or v < low:
            low = v
    if low is not None and peak is not None and peak > 0:
        worst = max(worst, (peak - low) / peak)
    return worst


def figures(result: RunResult, pair: str | None = None) -> Figures:
    """The figures of one pair (over its own window) or of the whole run."""
    with exact():
        return _figures(result, pair)


def _figures(result: RunResult, pair: str | None) -> Figures:
    totals = result.ledger.totals(pair)
    runs = [r for r in result.pairs if pair is None or r.name == pair]
    hours = ZERO
    held = 0
    for run in runs:
        for p in result.positions:
            if p.opened_at is None or p.id.rsplit("-", 1)[0] != run.name:
                continue
            held += 1
            hours += _held(p, run)
    windows = sum(replayed_ms(result, r) for r in runs)
    span = max(result.end_ms - result.start_ms, 1) if pair is None else max(windows, 1)
    start = result.starting_balance
    ret = totals["net_pnl"] / start if start else ZERO
    curve = [v for _, v in result.equity] if pair is None else [start + v for _, v in runs[0].pnl]
    return Figures(
        positions=held,
        hours_in_market=hours.quantize(Decimal("0.01")),
        time_in_market=hours * 3_600_000 / max(windows, 1),
        funding=totals["funding"],
        fees=totals["fees"],
        slippage=totals["slippage"],
        price_pnl=totals["price_pnl"],
        net_pnl=totals["net_pnl"],
        return_=ret,
        annualised_return=annualise(ret, span) if span >= ANNUALISED_FROM_MS else None,
        max_drawdown=max_drawdown(curve),
        cost_per_position=(totals["fees"] + totals["slippage"]) / held if held else ZERO,
        funding_per_position=totals["funding"] / held if held else ZERO,
    )


def replayed_ms(result: RunResult, run: PairRun) -> int:
    """How much of a pair's own window the run replayed: all of it, or up to where a
    signal stopped the run. Returns, time in market and the annualised return are
    all over this window (the total's, over the run's), never over data not played."""
    return max(min(run.end_ms, result.end_ms) - max(run.first_ms, result.start_ms), 0)


HEADROOM_PLACES = Decimal("0.0001")  # a ratio, said to a hundredth of a percent


class Summary(msgspec.Struct):
    run_id: str
    label: str
    start: datetime
    end: datetime
    events: int
    interrupted: bool
    quote: str
    starting_balance: Decimal
    ending_balance: Decimal  # the wallet
    ending_equity: Decimal  # the wallet plus whatever is still held, at the last prices
    ledger_balances: bool  # starting + funding - fees + price PnL == ending equity, exactly
    pairs: dict[str, Figures]
    total: Figures
    # Always hedged: in at the start, out at the end (none for a live run).
    baseline: dict[str, Figures] | None
    baseline_total: Figures | None
    positions: dict[str, int]  # count by final state
    baseline_positions: dict[str, int] | None
    baseline_ledger_balances: bool | None
    warnings: list[str]  # about the data (printed before the run)
    alerts: list[str]  # about the run: positions left unfinished, opening stopped (after it)
    # The margin guard: per pair, the least headroom its short had before liquidation
    # (1 - the highest maintenance margin / margin it reached; None: nothing held).
    margin_headroom: dict[str, Decimal | None] = msgspec.field(default_factory=dict)
    # pairs: auto: each held position closed for a better pair, when and why.
    rotations: list[str] = msgspec.field(default_factory=list)


def ledger_identity(result: RunResult) -> tuple[Decimal, Decimal]:
    """(starting + funding - fees + price PnL, ending equity): equal to the last digit.

    The ending equity is the executor's wallet plus what the positions still hold,
    valued apart from the ledger: spot at the last price, an open perp short at
    quantity x (entry - last)."""
    t = result.ledger.totals()
    with exact():
        return result.starting_balance + t["funding"] - t["fees"] + t["price_pnl"], (
            result.ending_equity
        )


def _balances(result: RunResult) -> bool:
    lhs, rhs = ledger_identity(result)
    return lhs == rhs


def by_state(positions: Sequence[Position]) -> dict[str, int]:
    states: dict[str, int] = {}
    for p in positions:
        key = p.state or "pending"
        states[key] = states.get(key, 0) + 1
    return states


def unfinished(result: RunResult) -> list[str]:
    """A warning for every position that did not end in a final state (one left open
    and hedged by a stop says so: it has no reason, being as it should be)."""
    return [
        f"{result.label}: position {p.id} left open and hedged (validated)"
        if p.state == "validated" and not p.reason
        else f"{result.label}: position {p.id} ended {p.state or 'pending'}: "
        f"{p.reason or 'no reason recorded'}"
        for p in result.positions
        if p.state not in FINAL_STATES
    ]


def summarise(
    run_id: str, result: RunResult, baseline: RunResult | None, warnings: Sequence[str]
) -> Summary:
    runs = [result] if baseline is None else [result, baseline]
    # The baseline's notes named as its own (the strategy's are the run's).
    alerts = [*result.notes]
    for r in runs[1:]:
        alerts += [note if f"{r.label}: " in note else f"{r.label}: {note}" for note in r.notes]
    alerts += [w for r in runs for w in unfinished(r)]
    return Summary(
        run_id=run_id,
        label=result.label,
        start=datetime.fromtimestamp(result.start_ms / 1000, UTC),
        end=datetime.fromtimestamp(result.end_ms / 1000, UTC),
        events=result.events,
        interrupted=any(r.interrupted for r in runs),
        quote=result.quote,
        starting_balance=result.starting_balance,
        ending_balance=result.ending_balance,
        ending_equity=result.ending_equity,
        ledger_balances=_balances(result),
        pairs={r.name: figures(result, r.name) for r in result.pairs},
        total=figures(result),
        baseline=None
        if baseline is None
        else {r.name: figures(baseline, r.name) for r in baseline.pairs},
        baseline_total=None if baseline is None else figures(baseline),
        positions=by_state(result.positions),
        baseline_positions=None if baseline is None else by_state(baseline.positions),
        baseline_ledger_balances=None if baseline is None else _balances(baseline),
        warnings=list(warnings),
        alerts=alerts,
        margin_headroom={
            r.name: None
            if r.worst_margin is None
            else max(Decimal(1) - r.worst_margin, ZERO).quantize(HEADROOM_PLACES)
            for r in result.pairs
        },
        rotations=list(result.rotations),
    )


def _held(position: Position, run: PairRun) -> Decimal:
    """Market hours a position was open; one still open counts up to the end of its
    pair's data only."""
    end = datetime.fromtimestamp(max(run.end_ms, 0) / 1000, UTC)
    return hours_held(position, end) or ZERO


# What a trader reads first, per position, from the ledger (so they add up to the
# table's and summary.json's totals to the last digit), then the position record.
FIGURE_FIELDS = [
    "funding",
    "fees",
    "price_pnl",
    "net_pnl",
    "hours_held",
    "spot_entry_price",
    "perp_entry_price",
    "spot_exit_price",
    "perp_exit_price",
]
POSITION_FIELDS = [
    "id",
    "spot_symbol",
    "perp_symbol",
    "state",
    *FIGURE_FIELDS,
    "quantity",
    "spot_qty",
    "perp_qty",
    "entry_fees",
    "exit_fees",
    "created_at",
    "opened_at",
    "closed_at",
    "reason",
    "client_order_ids",
]


def position_figures(result: RunResult) -> dict[str, dict[str, Decimal | None]]:
    """Per position id: funding, fees, price PnL (fills and marks) and net PnL summed
    from the ledger, its market hours held, and its entry and exit prices."""
    with exact():
        sums: dict[str, dict[str, Decimal]] = {}
        for e in result.ledger.entries:
            s = sums.setdefault(e.position_id, {"funding": ZERO, "fees": ZERO, "price_pnl": ZERO})
            if e.kind == "funding":
                s["funding"] += e.amount
            elif e.kind == "fee":
                s["fees"] -= e.amount
            elif e.kind in ("fill", "mark"):
                s["price_pnl"] += e.amount
        runs = {run.name: run for run in result.pairs}
        figures: dict[str, dict[str, Decimal | None]] = {}
        for p in result.positions:
            s = sums.get(p.id, {"funding": ZERO, "fees": ZERO, "price_pnl": ZERO})
            run = runs.get(p.id.rsplit("-", 1)[0])
            spot_exit, perp_exit = exit_prices(p)
            figures[p.id] = {
                **s,
                "net_pnl": s["funding"] - s["fees"] + s["price_pnl"],
                "hours_held": None if run is None or p.opened_at is None else _held(p, run),
                "spot_entry_price": p.spot_entry_price,
                "perp_entry_price": p.perp_entry_price,
                "spot_exit_price": spot_exit,
                "perp_exit_price": perp_exit,
            }
        return figures
