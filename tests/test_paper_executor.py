from __future__ import annotations

from decimal import Decimal

import pytest

from orchestrator import (
    Category,
    FeeSettings,
    InsufficientFundsError,
    InvalidOrderError,
    OrderOutcomeUnknown,
    OrderRejected,
    OrderRequest,
    OrderStatus,
    PaperExecutor,
    PriceUnavailableError,
    Side,
    TickerService,
)
from tests.support import INSTRUMENTS, FakeClock, make_ticker

pytestmark = pytest.mark.anyio
D = Decimal
FEES = FeeSettings(spot_taker=D("0.001"), perp_taker=D("0.00055"))


def paper(balance: Decimal = D(100_000), ticker: TickerService | None = None) -> PaperExecutor:
    ex = PaperExecutor(ticker or make_ticker(), FEES, INSTRUMENTS)
    ex.set_initial_balance("USDT", balance)
    return ex


def order(symbol: str, side: Side, qty: str, cid: str, **kw: object) -> OrderRequest:
    category = Category.LINEAR if symbol.endswith(":USDT") else Category.SPOT
    return OrderRequest(symbol, side, D(qty), category, cid, **kw)  # type: ignore[arg-type]


async def test_fill_is_simulated_with_a_paper_id_and_the_taker_fee() -> None:
    ex = paper()
    result = await ex.place_order(order("BTC/USDT", Side.BUY, "0.02", "c1"))
    assert result.is_simulated
    assert result.order_id.startswith("paper_")
    assert result.status is OrderStatus.FILLED
    assert result.filled_qty == result.requested_qty == D("0.02")
    assert result.avg_price == D(50000) * D("1.0005")
    # As on Bybit, a spot buy's fee is taken from the coins bought ...
    assert result.fee == D("0.02") * D("0.001")
    assert result.fee_currency == "BTC"
    assert ex.balance("BTC") == D("0.01998")
    # ... a spot sell's and every perp order's in the quote currency.
    perp = await ex.place_order(order("BTC/USDT:USDT", Side.SELL, "0.02", "c2"))
    assert perp.fee == D("0.02") * D(50010) * D("0.9995") * D("0.00055")
    assert perp.fee_currency == "USDT"
    sell = await ex.place_order(order("BTC/USDT", Side.SELL, "0.01", "c3"))
    assert sell.fee == D("0.01") * D(50000) * D("0.9995") * D("0.001")
    assert sell.fee_currency == "USDT"


async def test_slippage_goes_against_the_taker() -> None:
    ex = paper()
    buy = await ex.place_order(order("ETH/USDT", Side.BUY, "1", "b"))
    sell = await ex.place_order(order("ETH/USDT", Side.SELL, "0.999", "s"))  # held after the fee
    assert buy.avg_price == D(3000) * D("1.0005") > D(3000)
    assert sell.avg_price == D(3000) * D("0.9995") < D(3000)


async def test_missing_or_stale_price_refuses_the_order_and_moves_nothing() -> None:
    clock = FakeClock()
    ticker = TickerService(clock=clock)
    ticker.update("BTC/USDT", D(50000))  # ETH/USDT is never quoted
    ex = paper(ticker=ticker)
    with pytest.raises(PriceUnavailableError, match="ETH/USDT: no price received"):
        await ex.place_order(order("ETH/USDT", Side.BUY, "1", "e"))
    clock.now += 61
    with pytest.raises(PriceUnavailableError, match="stale"):
        await ex.place_order(order("BTC/USDT", Side.BUY, "0.01", "b"))
    assert ex.get_virtual_balance() == {"USDT": D(100_000)}
    assert await ex.fetch_order_by_client_id("b", "BTC/USDT") is None


async def test_virtual_balances_follow_spot_trades() -> None:
    ex = paper()
    buy = await ex.place_order(order("BTC/USDT", Side.BUY, "0.02", "b1"))
    assert buy.avg_price is not None
    cost = D("0.02") * buy.avg_price  # the fee came out of the coins
    assert ex.get_virtual_balance() == {"USDT": D(100_000) - cost, "BTC": D("0.01998")}
    with pytest.raises(InsufficientFundsError, match=r"0\.01998 held"):  # not the coins it paid
        await ex.place_order(order("BTC/USDT", Side.SELL, "0.02", "s0"))
    sell = await ex.place_order(order("BTC/USDT", Side.SELL, "0.01998", "s1"))
    assert sell.avg_price is not None
    proceeds = D("0.01998") * sell.avg_price - sell.fee
    assert ex.get_virtual_balance() == {"USDT": D(100_000) - cost + proceeds, "BTC": D(0)}


async def test_spot_buy_beyond_the_balance_is_refused() -> None:
    ex = paper(balance=D(500))
    with pytest.raises(InsufficientFundsError, match="costs"):
        await ex.place_order(order("BTC/USDT", Side.BUY, "0.01", "b"))
    with pytest.raises(InsufficientFundsError, match="held"):
        await ex.place_order(order("BTC/USDT", Side.SELL, "0.01", "s"))
    assert ex.get_virtual_balance() == {"USDT": D(500)}


async def test_a_short_perp_holds_margin_and_needs_it() -> None:
    ex = paper(balance=D(1000))
    await ex.place_order(order("BTC/USDT:USDT", Side.SELL, "0.01", "p1"))
    held = ex.get_perp_position("BTC/USDT:USDT")
    assert held.size == D("-0.01")
    assert ex.margin_in_use("USDT") == D("0.01") * held.entry_price  # 1x leverage
    assert ex.available_balance("USDT") < D(1000) - D(500)
    # The margin is spoken for: another 0.01 short does not fit.
    with pytest.raises(InsufficientFundsError, match="margin"):
        await ex.place_order(order("BTC/USDT:USDT", Side.SELL, "0.01", "p2"))


async def test_reduce_only_close_realises_the_short_pnl() -> None:
    ticker = make_ticker()
    ex = paper(ticker=ticker)
    short = await ex.place_order(order("BTC/USDT:USDT", Side.SELL, "0.01", "p1"))
    ticker.update("BTC/USDT:USDT", D(49000))  # price falls: the short gains
    cover = await ex.place_order(order("BTC/USDT:USDT", Side.BUY, "0.01", "p2", reduce_only=True))
    assert short.avg_price is not None and cover.avg_price is not None
    pnl = D("0.01") * (short.avg_price - cover.avg_price)
    assert pnl > 0
    assert ex.get_perp_position("BTC/USDT:USDT").size == 0
    assert ex.margin_in_use("USDT") == 0
    assert ex.get_virtual_balance()["USDT"] == D(100_000) + pnl - short.fee - cover.fee


async def test_held_perps_follow_every_trade_in_the_order_first_traded() -> None:
    ex = paper()
    assert ex.held_perps() == {}
    await ex.place_order(order("BTC/USDT:USDT", Side.SELL, "0.01", "b1"))
    await ex.place_order(order("ETH/USDT:USDT", Side.SELL, "0.1", "e1"))
    held = ex.held_perps()
    assert list(held) == ["BTC/USDT:USDT", "ETH/USDT:USDT"]
    held.clear()  # the caller's own dict: the wallet is not changed by it
    assert ex.held_perps()["BTC/USDT:USDT"][0] == D("-0.01")
    await ex.place_order(order("BTC/USDT:USDT", Side.BUY, "0.01", "b2", reduce_only=True))
    assert list(ex.held_perps()) == ["ETH/USDT:USDT"]  # flat: no longer held
    # Opened again, BTC keeps its place: first traded, first listed (as journaled).
    await ex.place_order(order("BTC/USDT:USDT", Side.SELL, "0.02", "b3"))
    assert ex.held_perps() == {
        "BTC/USDT:USDT": (D("-0.02"), ex.get_perp_position("BTC/USDT:USDT").entry_price),
        "ETH/USDT:USDT": (D("-0.1"), ex.get_perp_position("ETH/USDT:USDT").entry_price),
    }
    assert list(ex.held_perps()) == ["BTC/USDT:USDT", "ETH/USDT:USDT"]


async def test_reduce_only_that_would_open_or_increase_is_rejected() -> None:
    ex = paper()
    with pytest.raises(OrderRejected, match="reduce-only"):
        await ex.place_order(order("BTC/USDT:USDT", Side.BUY, "0.01", "r1", reduce_only=True))
    await ex.place_order(order("BTC/USDT:USDT", Side.SELL, "0.01", "p1"))
    with pytest.raises(OrderRejected, match="reduce-only"):
        await ex.place_order(order("BTC/USDT:USDT", Side.BUY, "0.02", "r2", reduce_only=True))
    assert ex.get_perp_position("BTC/USDT:USDT").size == D("-0.01")


async def test_results_can_be_found_by_client_order_id() -> None:
    ex = paper()
    placed = await ex.place_order(order("BTC/USDT", Side.BUY, "0.01", "pos1-so1"))
    assert await ex.fetch_order_by_client_id("pos1-so1", "BTC/USDT") == placed
    assert await ex.fetch_order_by_client_id("pos1-so1", "ETH/USDT") is None
    assert await ex.fetch_order_by_client_id("never-sent", "BTC/USDT") is None


async def test_a_reused_client_order_id_is_not_a_second_order() -> None:
    ex = paper()
    await ex.place_order(order("BTC/USDT", Side.BUY, "0.01", "dup"))
    with pytest.raises(OrderOutcomeUnknown, match="already used"):
        await ex.place_order(order("BTC/USDT", Side.BUY, "0.01", "dup"))
    assert ex.get_virtual_balance()["BTC"] == D("0.00999")  # one buy, less its fee


async def test_cancel_is_always_accepted_on_paper() -> None:
    assert await paper().cancel_order("paper_x", "BTC/USDT:USDT") is True


# -- bad input: a clear error, nothing sent, nothing moved


@pytest.mark.parametrize("qty", ["0", "-0.01", "NaN"])
def test_zero_negative_or_nan_quantity_cannot_be_requested(qty: str) -> None:
    with pytest.raises(InvalidOrderError, match="quantity must be positive"):
        order("BTC/USDT", Side.BUY, qty, "c")


def test_overlong_or_unsafe_client_order_id_is_refused() -> None:
    with pytest.raises(InvalidOrderError, match="1-36 characters"):
        order("BTC/USDT", Side.BUY, "1", "x" * 37)
    with pytest.raises(InvalidOrderError, match="1-36 characters"):
        order("BTC/USDT", Side.BUY, "1", "a b&c")


async def test_unknown_symbol_or_wrong_category_is_refused() -> None:
    ex = paper()
    with pytest.raises(InvalidOrderError, match="unknown symbol 'BTC/USD:USD'"):
        await ex.place_order(order("BTC/USD:USD", Side.SELL, "1", "u"))
    wrong = OrderRequest("BTC/USDT", Side.BUY, D(1), Category.LINEAR, "w")
    with pytest.raises(InvalidOrderError, match="spot instrument"):
        await ex.place_order(wrong)
    assert ex.get_virtual_balance() == {"USDT": D(100_000)}


async def test_funding_is_paid_on_the_perp_position_by_sign() -> None:
    ex = paper()
    assert ex.settle_funding("BTC/USDT:USDT", D("0.0001"), D(50000)) == 0  # nothing held
    await ex.place_order(order("BTC/USDT:USDT", Side.SELL, "0.02", "short"))
    before = ex.get_virtual_balance()["USDT"]
    received = ex.settle_funding("BTC/USDT:USDT", D("0.0001"), D(50000))
    assert received == D("0.02") * 50000 * D("0.0001")  # longs pay shorts
    paid = ex.settle_funding("BTC/USDT:USDT", D("-0.0002"), D(51000))
    assert paid == -D("0.02") * 51000 * D("0.0002")  # negative: the short pays
    assert ex.get_virtual_balance()["USDT"] == before + received + paid
