"""LiveExecutor through real ccxt (async bybit) against the fake Bybit v5 server on loopback."""

from __future__ import annotations

import decimal
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import anyio
import pytest

from orchestrator.bybit import client as bybit
from orchestrator.exceptions import (
    InsufficientFundsError,
    InvalidOrderError,
    OrderOutcomeUnknown,
    OrderRejected,
)
from orchestrator.execution.live import LiveExecutor
from orchestrator.models import Category, OrderRequest, OrderStatus, OrderType, Side
from orchestrator.settings import VenueTiming
from orchestrator.venue import FaultRule
from tests import fake_bybit
from tests.fake_bybit import API_KEY, SECRET, FakeBybit

pytestmark = pytest.mark.anyio

SPOT = "BTC/USDT"
PERP = "BTC/USDT:USDT"


def order(
    symbol: str, side: Side, qty: str, cid: str, *, reduce_only: bool = False
) -> OrderRequest:
    category = Category.SPOT if symbol == SPOT else Category.LINEAR
    return OrderRequest(
        symbol=symbol,
        side=side,
        quantity=Decimal(qty),
        category=category,
        client_order_id=cid,
        reduce_only=reduce_only,
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeBybit]:
    async with FakeBybit() as server:
        yield server


def make_exchange(builder: str, url: str, *, secret: str = SECRET) -> Any:
    """Real ccxt for ``url``: plain, as the tests' venue client builds it, or as a live run
    builds it (``make_exchange``: every answer checked before ccxt reads it)."""
    if builder == "plain":
        return fake_bybit.make_exchange(url, secret=secret)
    return bybit.make_exchange(API_KEY, secret, VenueTiming(request_timeout_ms=2000), url=url)


@pytest.fixture(params=["plain", "checked"])
def builder(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def exchange(fake: FakeBybit, builder: str) -> AsyncIterator[Any]:
    client = make_exchange(builder, fake.url)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def executor(exchange: Any) -> LiveExecutor:
    return LiveExecutor(exchange, fill_poll_interval=0.01, fill_poll_attempts=3)


async def test_spot_market_buy_sends_base_coin_qty_and_reports_the_fill(
    fake: FakeBybit, executor: LiveExecutor
) -> None:
    result = await executor.place_order(order(SPOT, Side.BUY, "0.01", "pos1-spot-open-0"))

    [body] = fake.create_bodies
    assert body["category"] == "spot"
    assert body["orderLinkId"] == "pos1-spot-open-0"
    assert body["side"] == "Buy"
    assert body["orderType"] == "Market"
    assert body["qty"] == "0.01"
    assert body["marketUnit"] == "baseCoin"  # qty in BTC, not USDT to spend
    assert "price" not in body
    assert result.status is OrderStatus.FILLED
    assert result.client_order_id == "pos1-spot-open-0"
    assert result.order_id == "fake-1"
    assert (result.symbol, result.side, result.category) == (SPOT, Side.BUY, Category.SPOT)
    assert result.requested_qty == result.filled_qty == Decimal("0.01")
    assert result.avg_price == Decimal("60000")
    # Bybit charges a spot buy's fee in the coin bought: 0.1% of 0.01 BTC.
    assert (result.fee, result.fee_currency) == (Decimal("0.00001"), "BTC")
    assert result.is_simulated is False
    assert fake.bad_signatures == 0
    assert fake.unknown_paths == []


async def test_perp_short_then_reduce_only_close(fake: FakeBybit, executor: LiveExecutor) -> None:
    short = await executor.place_order(order(PERP, Side.SELL, "0.01", "pos1-perp-open-0"))
    close = await executor.place_order(
        order(PERP, Side.BUY, "0.01", "pos1-perp-close-0", reduce_only=True)
    )

    opened, closed = fake.create_bodies
    assert (opened["category"], opened["side"], opened["qty"]) == ("linear", "Sell", "0.01")
    assert "reduceOnly" not in opened
    assert (closed["category"], closed["side"], closed["reduceOnly"]) == ("linear", "Buy", True)
    for result in (short, close):
        assert result.status is OrderStatus.FILLED
        assert result.category is Category.LINEAR
        assert result.filled_qty == Decimal("0.01")
        # Perp fees are in USDT: 0.055% of 600.
        assert (result.fee, result.fee_currency) == (Decimal("0.33"), "USDT")
    assert (short.side, close.side) == (Side.SELL, Side.BUY)


async def test_awkward_numbers_arrive_as_exact_decimals(
    fake: FakeBybit, executor: LiveExecutor
) -> None:
    fake.price = Decimal("67123.45")
    spot = await executor.place_order(order(SPOT, Side.BUY, "0.01234", "awkward-spot"))
    perp = await executor.place_order(order(PERP, Side.SELL, "0.013", "awkward-perp"))

    assert fake.create_bodies[0]["qty"] == "0.01234"
    assert str(spot.filled_qty) == "0.01234"
    assert str(spot.avg_price) == "67123.45"
    assert str(spot.fee) == "0.00001234"
    assert str(perp.avg_price) == "67123.45"
    assert str(perp.fee) == "0.4799326675"  # 0.013 * 67123.45 * 0.055%, in USDT


async def test_decimal_context_is_left_as_it_was(executor: LiveExecutor) -> None:
    # ccxt's precision helpers set ROUND_HALF_UP and trap Underflow on the current context.
    before = decimal.getcontext().copy()
    await executor.place_order(order(SPOT, Side.BUY, "0.01", "ctx-check"))
    after = decimal.getcontext()
    assert after.rounding == before.rounding == decimal.ROUND_HALF_EVEN
    assert after.traps == before.traps


@pytest.mark.parametrize("fault", ["late reply", "dropped connection"])
async def test_network_failure_after_placing_is_unknown_then_found_by_client_id(
    fake: FakeBybit, exchange: Any, executor: LiveExecutor, fault: str
) -> None:
    exchange.timeout = 300  # ms
    if fault == "late reply":
        fake.reply_delay = 1.0
    else:
        fake.drop_connection = True

    with pytest.raises(OrderOutcomeUnknown) as raised:
        await executor.place_order(order(PERP, Side.SELL, "0.01", "pos2-perp-open-0"))

    assert PERP in str(raised.value)
    assert "pos2-perp-open-0" in str(raised.value)
    found = await executor.fetch_order_by_client_id("pos2-perp-open-0", PERP)
    assert found is not None
    assert found.status is OrderStatus.FILLED
    assert found.filled_qty == Decimal("0.01")
    assert found.side is Side.SELL
    assert len(fake.create_bodies) == 1  # never resent
    assert len(fake.orders) == 1


@pytest.mark.parametrize(
    ("code", "msg", "expected"),
    [
        (110007, "ab not enough for new order", InsufficientFundsError),
        (110017, "current position is zero, cannot fix reduce-only order qty", OrderRejected),
        (10016, "System error. Please try again later.", OrderOutcomeUnknown),
    ],
)
async def test_venue_error_codes_map_to_the_executor_contract(
    fake: FakeBybit,
    executor: LiveExecutor,
    code: int,
    msg: str,
    expected: type[Exception],
) -> None:
    fake.create_error = (code, msg)
    with pytest.raises(expected) as raised:
        await executor.place_order(order(PERP, Side.BUY, "0.01", "err-1", reduce_only=True))

    text = str(raised.value)
    assert PERP in text
    assert "err-1" in text
    assert msg in text
    assert str(code) in text
    if expected is OrderRejected:
        assert not isinstance(raised.value, InsufficientFundsError)


async def test_duplicate_client_id_means_an_earlier_attempt_was_accepted(
    fake: FakeBybit, executor: LiveExecutor
) -> None:
    request = order(SPOT, Side.BUY, "0.01", "pos3-spot-open-0")
    await executor.place_order(request)

    with pytest.raises(OrderOutcomeUnknown, match="170141"):  # Bybit's spot code
        await executor.place_order(request)
    assert len(fake.orders) == 1
    perp = order(PERP, Side.SELL, "0.01", "pos3-perp-open-0")
    await executor.place_order(perp)
    with pytest.raises(OrderOutcomeUnknown, match="110072"):  # and its linear one
        await executor.place_order(perp)


async def test_bad_credentials_are_rejected_without_leaking_them(
    fake: FakeBybit, builder: str
) -> None:
    client = make_exchange(builder, fake.url, secret="wrong-secret")
    try:
        with pytest.raises(OrderRejected) as raised:
            await LiveExecutor(client).place_order(order(SPOT, Side.BUY, "0.01", "auth-1"))
    finally:
        await client.close()

    text = str(raised.value)
    assert "10004" in text
    assert API_KEY not in text
    assert "wrong-secret" not in text
    assert SECRET not in text
    assert raised.value.__cause__ is None  # the venue's raw text (key included) is not chained
    assert fake.orders == {}


async def test_order_open_on_first_read_is_polled_until_filled(
    fake: FakeBybit, executor: LiveExecutor
) -> None:
    fake.open_fetches = 1
    result = await executor.place_order(order(PERP, Side.SELL, "0.01", "slow-fill"))

    assert result.status is OrderStatus.FILLED
    assert result.filled_qty == Decimal("0.01")
    assert fake.orders["fake-1"].reads == 2


async def test_partly_filled_market_order_reports_what_filled(
    fake: FakeBybit, executor: LiveExecutor
) -> None:
    fake.fill_qty = Decimal("0.004")
    result = await executor.place_order(order(PERP, Side.SELL, "0.01", "thin-book"))

    assert result.status is OrderStatus.PARTIALLY_FILLED
    assert result.is_done
    assert (result.requested_qty, result.filled_qty) == (Decimal("0.01"), Decimal("0.004"))
    assert result.avg_price == Decimal("60000")
    assert result.fee == Decimal("0.132")  # on the filled part only


async def test_market_order_that_filled_nothing_is_cancelled(
    fake: FakeBybit, executor: LiveExecutor
) -> None:
    fake.fill_qty = Decimal(0)
    result = await executor.place_order(order(SPOT, Side.BUY, "0.01", "no-liquidity"))

    assert result.status is OrderStatus.CANCELLED
    assert result.filled_qty == 0
    assert result.avg_price is None
    assert (result.fee, result.fee_currency) == (Decimal(0), "USDT")


async def test_lookup_of_an_id_never_sent_is_none(executor: LiveExecutor) -> None:
    assert await executor.fetch_order_by_client_id("never-sent", PERP) is None
    assert await executor.fetch_order_by_client_id("never-sent", SPOT) is None


async def test_open_order_is_found_then_cancelled_once(
    fake: FakeBybit, executor: LiveExecutor
) -> None:
    fake.open_fetches = 1_000
    placed = await executor.place_order(order(SPOT, Side.BUY, "0.01", "resting-1"))
    assert placed.status is OrderStatus.OPEN
    assert not placed.is_done

    found = await executor.fetch_order_by_client_id("resting-1", SPOT)
    assert found is not None
    assert (found.status, found.order_id, found.filled_qty) == (
        OrderStatus.OPEN,
        placed.order_id,
        Decimal(0),
    )
    assert found.avg_price is None

    assert await executor.cancel_order(placed.order_id, SPOT, Category.SPOT) is True
    assert await executor.cancel_order(placed.order_id, SPOT, Category.SPOT) is False
    cancelled = await executor.fetch_order_by_client_id("resting-1", SPOT)
    assert cancelled is not None
    assert cancelled.status is OrderStatus.CANCELLED


async def test_cancelling_a_filled_order_returns_false(executor: LiveExecutor) -> None:
    filled = await executor.place_order(order(PERP, Side.SELL, "0.01", "done-1"))
    assert await executor.cancel_order(filled.order_id, PERP) is False


async def test_closed_orders_found_in_history_after_a_venue_restart(
    fake: FakeBybit, executor: LiveExecutor
) -> None:
    await executor.place_order(order(PERP, Side.SELL, "0.01", "pos4-perp-open-0"))
    fake.realtime_forgets_closed = True

    found = await executor.fetch_order_by_client_id("pos4-perp-open-0", PERP)
    assert found is not None
    assert found.status is OrderStatus.FILLED


async def test_lookup_retries_transient_network_errors(
    fake: FakeBybit, executor: LiveExecutor
) -> None:
    await executor.place_order(order(PERP, Side.SELL, "0.01", "retry-1"))
    fake.failing_reads = 2

    found = await executor.fetch_order_by_client_id("retry-1", PERP)
    assert found is not None
    assert found.status is OrderStatus.FILLED


async def test_unreadable_fill_after_an_accepted_create_is_unknown(
    fake: FakeBybit, executor: LiveExecutor
) -> None:
    fake.failing_reads = 100
    with pytest.raises(OrderOutcomeUnknown, match="accepted as fake-1") as raised:
        await executor.place_order(order(PERP, Side.SELL, "0.01", "blind-1"))
    assert "blind-1" in str(raised.value)
    with pytest.raises(OrderOutcomeUnknown, match="blind-1"):
        await executor.fetch_order_by_client_id("blind-1", PERP)

    fake.failing_reads = 0
    found = await executor.fetch_order_by_client_id("blind-1", PERP)
    assert found is not None
    assert found.status is OrderStatus.FILLED
    assert len(fake.orders) == 1


async def test_cancelling_the_caller_does_not_abandon_the_create_request(
    fake: FakeBybit, exchange: Any, executor: LiveExecutor
) -> None:
    await exchange.load_markets()  # so the deadline falls inside the create call
    fake.reply_delay = 0.3
    started = anyio.current_time()
    with anyio.move_on_after(0.05) as scope:
        await executor.place_order(order(PERP, Side.SELL, "0.01", "shielded-1"))

    assert scope.cancelled_caught
    # The create call ran until the venue answered, not until the caller gave up.
    assert anyio.current_time() - started >= 0.25
    assert len(fake.orders) == 1


@pytest.mark.parametrize(
    ("request_", "why"),
    [
        (order(PERP, Side.SELL, "0.0123456", "step-1"), "not a multiple"),
        (order(SPOT, Side.BUY, "0.0000001", "tiny-1"), "amount"),
        (
            OrderRequest(
                symbol=SPOT,
                side=Side.BUY,
                quantity=Decimal("0.01"),
                category=Category.LINEAR,
                client_order_id="cat-1",
            ),
            "not a linear market",
        ),
        (order("DOGE/USDT", Side.BUY, "1", "sym-1"), "no market"),
        (
            OrderRequest(
                symbol=SPOT,
                side=Side.BUY,
                quantity=Decimal("0.01"),
                category=Category.SPOT,
                client_order_id="lim-1",
                order_type=OrderType.LIMIT,
                price=Decimal("60000"),
            ),
            "market orders only",
        ),
    ],
)
async def test_requests_ccxt_would_alter_are_refused_before_sending(
    fake: FakeBybit, executor: LiveExecutor, request_: OrderRequest, why: str
) -> None:
    with pytest.raises(InvalidOrderError, match=why):
        await executor.place_order(request_)
    assert fake.create_bodies == []


@pytest.mark.parametrize(
    ("error", "expected"),
    [("system_error", OrderOutcomeUnknown), ("params", OrderRejected)],
)
async def test_a_cancel_answered_system_error_may_have_happened(
    fake: FakeBybit, executor: LiveExecutor, error: str, expected: type[Exception]
) -> None:
    fake.open_fetches = 1_000
    placed = await executor.place_order(order(PERP, Side.SELL, "0.01", "cancel-err"))
    fake.venue.faults.add(FaultRule(kind="reject", endpoint="order/cancel", error=error))
    with pytest.raises(expected, match=placed.order_id):
        await executor.cancel_order(placed.order_id, PERP)
