"""The figures a run reports are true: each pair closed at the end of its own data,
the ledger identity with anything left open, time in market, costs beside funding,
base-coin spot fees, exactness for any valid step, and a run that runs out of money."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal

import msgspec
import pytest

from orchestrator.config import Config, Pair
from orchestrator.exceptions import OrderRejected
from orchestrator.execution.paper import PaperExecutor
from orchestrator.fills import hours_of
from orchestrator.market.recorded import Candle, FundingRate, PairData
from orchestrator.market.ticker import TickerService
from orchestrator.models import Category, Instrument, OrderRequest, OrderResult, Side
from orchestrator.money import exact
from orchestrator.output.plots import at, values_at
from orchestrator.output.report import format_table
from orchestrator.replay.engine import Replay
from orchestrator.strategy.funding import AlwaysHedged, FundingStrategy
from orchestrator.sweep.plan import score
from orchestrator.sweep.spec import Objective
from orchestrator.trading.figures import annualise, ledger_identity, max_drawdown, summarise
from orchestrator.trading.run import RunResult
from tests.support import BTC_PERP, BTC_SPOT, ETH_PERP, ETH_SPOT, QUICK

pytestmark = pytest.mark.anyio
D = Decimal
HOUR = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
INSTRUMENTS = {i.symbol: i for i in (BTC_SPOT, BTC_PERP, ETH_SPOT, ETH_PERP)}
BOTH = [Pair("BTC/USDT", "BTC/USDT:USDT"), Pair("ETH/USDT", "ETH/USDT:USDT")]


def series(
    spot: str, perp: str, hours: int, price: Decimal, rates: Sequence[str], *, start: int = T0
) -> PairData:
    def candles(p: Decimal) -> list[Candle]:
        return [Candle(start + i * HOUR, p, p, p, p, D(1)) for i in range(hours)]

    funding = [FundingRate(start + (i + 1) * 8 * HOUR, D(r)) for i, r in enumerate(rates)]
    return PairData(spot, perp, candles(price), candles(price * D("1.0002")), funding, [])


def replay(
    data: Sequence[PairData],
    *,
    pairs: Sequence[Pair] = BOTH,
    baseline: bool = False,
    config: Config | None = None,
    instruments: dict[str, Instrument] = INSTRUMENTS,
    **kw: object,
) -> Replay:
    config = config or Config(pairs=list(pairs), strategy=QUICK)
    strats = [
        AlwaysHedged() if baseline else FundingStrategy(QUICK, config.fees, config.paper.slippage)
        for _ in pairs
    ]
    return Replay(config, data, instruments, strats, **kw)  # type: ignore[arg-type]


def assert_balances(result: RunResult) -> None:
    lhs, rhs = ledger_identity(result)
    assert lhs == rhs  # exactly


# -- 1, 4: a pair whose data ends early


async def test_a_pair_whose_data_ends_early_is_closed_at_its_own_end_with_its_costs() -> None:
    btc = series("BTC/USDT", "BTC/USDT:USDT", 8 * 30, D(50000), ["0.0001"] * 29)
    eth = series("ETH/USDT", "ETH/USDT:USDT", 8 * 20, D(3000), ["0.0001"] * 19)  # ends 80 h early
    result = await replay([btc, eth], baseline=True, label="always hedged").run()

    assert [p.state for p in result.positions] == ["closed", "closed"]
    eth_position = next(p for p in result.positions if p.id.startswith("ETHUSDT"))
    eth_end = T0 + 8 * 20 * HOUR  # the close of its last candle
    assert eth_position.closed_at is not None
    assert eth_position.closed_at.timestamp() * 1000 == eth_end
    assert eth_position.exit_fees > 0  # the exit was paid for, not marked at the last price
    closes = [e for e in result.ledger.entries if e.pair == "ETHUSDT" and e.kind == "fill"][2:]
    assert {e.time_ms for e in closes} == {eth_end}
    assert not [e for e in result.ledger.entries if e.kind == "mark"]
    assert result.pairs[1].exits == [(eth_end, "end of data")]
    assert len(result.positions) == 2  # ETH did not enter again after its data ended
    assert_balances(result)

    # Time in market counts ETH's own window only (it opened on its first hour).
    summary = summarise("r", result, result, [])
    eth_figures = summary.pairs["ETHUSDT"]
    assert eth_position.opened_at is not None
    held_h = (eth_end - int(eth_position.opened_at.timestamp() * 1000)) / HOUR
    assert eth_figures.hours_in_market == D(held_h).quantize(D("0.01"))
    window_h = (eth_end - result.pairs[1].first_ms) / HOUR
    assert eth_figures.time_in_market == D(held_h) / D(window_h) == 1  # in from its first hour


async def test_a_pair_whose_perp_ends_before_its_spot_is_closed_when_its_perp_ends() -> None:
    btc = series("BTC/USDT", "BTC/USDT:USDT", 8 * 10, D(50000), ["0.0001"] * 9)
    btc = msgspec.structs.replace(btc, perp=btc.perp[:-30])
    result = await replay([btc], pairs=BOTH[:1], baseline=True).run()
    (position,) = result.positions
    assert position.state == "closed"
    assert position.closed_at is not None
    assert position.closed_at.timestamp() * 1000 == T0 + (8 * 10 - 30) * HOUR
    assert_balances(result)


# -- 3: the identity with exposure left at the end


class Refuses(PaperExecutor):
    """A venue that refuses the closing order of the named legs."""

    refuse: frozenset[Category] = frozenset()

    async def place_order(self, request: OrderRequest) -> OrderResult:
        closing = (request.category is Category.SPOT and request.side is Side.SELL) or (
            request.category is Category.LINEAR and request.side is Side.BUY
        )
        if closing and request.category in self.refuse:
            raise OrderRejected(f"test venue: {request.category} close refused")
        return await super().place_order(request)


@pytest.mark.parametrize(
    "refused",
    [{Category.SPOT}, {Category.LINEAR}, {Category.SPOT, Category.LINEAR}],
    ids=["open spot", "open perp", "both open"],
)
async def test_ledger_balances_whatever_is_left_open_at_the_end(refused: set[Category]) -> None:
    # The price moves between the open and the end: an open perp's value is
    # quantity x (entry - last), not its notional.
    btc = series("BTC/USDT", "BTC/USDT:USDT", 8 * 6, D(50000), ["0.001"] * 5)
    moved = [msgspec.structs.replace(c, close=c.close + 7 * i) for i, c in enumerate(btc.perp)]
    btc = msgspec.structs.replace(btc, perp=moved)

    def venue(ticker: TickerService) -> PaperExecutor:
        executor = Refuses(ticker, Config().fees, INSTRUMENTS.values())
        executor.refuse = frozenset(refused)
        return executor

    result = await replay([btc], pairs=BOTH[:1], make_executor=venue).run()
    position = result.positions[0]
    assert position.state == "needs_attention"
    assert (position.spot_qty > 0) == (Category.SPOT in refused)
    assert (position.perp_qty > 0) == (Category.LINEAR in refused)
    assert_balances(result)
    summary = summarise("r", result, result, [])
    assert summary.ledger_balances
    assert any("ended needs_attention" in a for a in summary.alerts)
    assert "warning: strategy: position BTCUSDT-0001 ended needs_attention" in format_table(summary)


# -- 5: the table says how to read it


async def test_the_table_puts_slippage_inside_price_pnl_and_costs_beside_funding() -> None:
    btc = series("BTC/USDT", "BTC/USDT:USDT", 8 * 12, D(50000), ["0.001"] * 5 + ["-0.001"] * 6)
    result = await replay([btc], pairs=BOTH[:1]).run()
    summary = summarise("r", result, result, [])
    f = summary.total
    assert f.positions >= 1
    assert f.cost_per_position == (f.fees + f.slippage) / f.positions
    assert f.funding_per_position == f.funding / f.positions
    assert f.net_pnl == f.funding - f.fees + f.price_pnl  # slippage not subtracted again
    table = format_table(summary)
    assert "(slippage)" in table and "do not subtract it again" in table
    assert "cost/pos" in table and "fund/pos" in table
    assert f"({f.slippage:,.2f})" in table


@pytest.mark.parametrize("hours", [6, 24, 48])
async def test_a_return_is_annualised_only_over_a_day_or_more(hours: int) -> None:
    btc = series("BTC/USDT", "BTC/USDT:USDT", hours, D(50000), ["0.001"] * (hours // 8))
    result = await replay([btc], pairs=BOTH[:1]).run()
    summary = summarise("r", result, result, [])
    span = result.end_ms - result.start_ms
    row = next(line for line in format_table(summary).splitlines() if line.startswith("BTCUSDT"))
    annual = row.split()[-4]  # then max DD, cost/pos, fund/pos
    if span < 24 * HOUR:  # a few hours' return raised to a year's power says nothing
        assert summary.total.annualised_return is None
        assert summary.pairs["BTCUSDT"].annualised_return is None
        assert annual == "-"
        assert b'"annualised_return":null' in msgspec.json.encode(summary)
        # A sweep still ranks such windows' trials by it: the return over its span.
        value, _, _ = score(summary, Objective(metric="annualised_return"))
        with exact():
            assert value == annualise(summary.total.return_, span)
    else:
        with exact():  # the figures' own context
            expected = annualise(summary.total.return_, span)
        assert summary.total.annualised_return == expected
        assert annual == f"{expected * 100:.2f}%"


# -- 6: paper charges a spot buy's fee in the coin bought, as Bybit does


async def test_paper_spot_fees_are_taken_in_the_coin_bought_and_the_close_sells_what_is_held() -> (
    None
):
    btc = series("BTC/USDT", "BTC/USDT:USDT", 8 * 6, D(50000), ["0.001"] * 5)
    result = await replay([btc], pairs=BOTH[:1], baseline=True).run()
    (position,) = result.positions
    buy, perp_open, sell, _ = position.orders
    assert (buy.fee_currency, buy.fee) == ("BTC", buy.filled_qty * D("0.001"))
    assert sell.filled_qty == buy.filled_qty - buy.fee  # what is held
    assert perp_open.filled_qty == buy.filled_qty  # the perp is the full hedge size
    fill, fee = [e for e in result.ledger.entries if e.note.startswith(buy.client_order_id)][:2]
    assert buy.avg_price is not None
    assert fill.quantity == buy.filled_qty - buy.fee  # coins received
    assert fee.amount == -buy.fee * buy.avg_price and fee.currency == "USDT"
    assert fill.amount + fee.amount == -buy.filled_qty * buy.avg_price  # the cash paid
    assert_balances(result)


# -- 7: exact for any valid step and any length


async def test_ledger_balances_exactly_with_a_tiny_quantity_step() -> None:
    tiny = {
        s: msgspec.structs.replace(i, qty_step=D("1e-30"), min_qty=D("1e-30"))
        for s, i in INSTRUMENTS.items()
    }
    btc = series("BTC/USDT", "BTC/USDT:USDT", 8 * 12, D("50000.3"), ["0.001"] * 5 + ["-0.001"] * 6)
    result = await replay([btc], pairs=BOTH[:1], instruments=tiny).run()
    assert result.positions[0].quantity.as_tuple().exponent < -20  # the step is used
    assert_balances(result)


async def test_ledger_balances_exactly_over_twenty_years() -> None:
    hours = 20 * 365 * 24
    btc = series(
        "BTC/USDT",
        "BTC/USDT:USDT",
        hours,
        D("43123.12345678"),
        [("0.000123456789" if i % 50 else "-0.000412345678") for i in range(hours // 8 - 1)],
    )
    result = await replay([btc], pairs=BOTH[:1], baseline=True).run()
    assert len([e for e in result.ledger.entries if e.kind == "funding"]) > 20_000
    assert_balances(result)


# -- 15: out of money


async def test_a_run_that_cannot_size_a_position_stops_trying_until_the_balance_changes() -> None:
    btc = series("BTC/USDT", "BTC/USDT:USDT", 8 * 40, D(50000), ["0.001"] * 39)
    config = Config(pairs=BOTH[:1], strategy=QUICK, balances={"USDT": D(40)})  # below minimums
    result = await replay([btc], pairs=BOTH[:1], config=config, baseline=True).run()
    assert [p.state for p in result.positions] == ["rejected"]  # tried once, not every hour
    (note,) = result.notes
    assert "BTCUSDT: stopped opening" in note and "until the balance changes" in note
    summary = summarise("r", result, result, [])
    assert f"warning: {note}" in format_table(summary)


def test_max_drawdown_is_the_largest_fall_from_any_peak_exactly() -> None:
    # The plain definition: every value against the highest before it.
    def plain(values: Sequence[Decimal]) -> Decimal:
        worst, peak = D(0), None
        for v in values:
            peak = v if peak is None or v > peak else peak
            if peak > 0:
                worst = max(worst, (peak - v) / peak)
        return worst

    rng = random.Random(7)
    for _ in range(400):
        steps = rng.randint(0, 60)
        start = D(rng.randint(-50, 200))
        values = [start]
        for _ in range(steps):
            values.append(values[-1] + D(rng.randint(-300, 300)) / D(7))  # inexact quotients
        assert max_drawdown(values) == plain(values), values
        assert str(max_drawdown(values)) == str(plain(values))
    assert max_drawdown([D(100), D(50), D(120), D(60), D(130)]) == D("0.5")
    assert max_drawdown([]) == 0 and max_drawdown([D(-5), D(-10)]) == 0


def test_a_chart_panel_gives_each_curve_its_last_value_at_every_time() -> None:
    rng = random.Random(3)
    for _ in range(200):
        points = sorted(
            {rng.randint(0, 100): D(rng.randint(0, 9)) for _ in range(rng.randint(0, 30))}.items()
        )
        times = sorted(rng.sample(range(-5, 110), rng.randint(0, 40)))
        assert values_at(points, times) == [at(points, t) for t in times]


def test_hours_held_are_exact_when_they_end_and_to_a_billionth_of_an_hour_otherwise() -> None:
    # A replay's positions open and close on its data's instants; a live or dry run's
    # carry microseconds, whose hours would otherwise print 200 digits.
    with exact():
        assert str(hours_of(timedelta(hours=8))) == "8"
        assert str(hours_of(timedelta(minutes=90))) == "1.5"
        assert str(hours_of(timedelta(minutes=61))) == "1.016666667"
        held = timedelta(hours=3, minutes=7, seconds=12, microseconds=345_678)
        hours = hours_of(held)
        assert str(hours) == "3.120096022"
        assert abs(hours * 3_600_000_000 - 11_232_345_678) <= D("1.8")  # within 1e-9 h / 2
