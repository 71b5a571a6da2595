"""Malformed answers, through real ccxt (the client ``make_exchange`` builds) and the
LiveExecutor, against the shipped loopback venue.

ccxt 4.5 reads most broken answers as an order without an id or as an empty list
(tests/test_venue_faults.py, MALFORMED). Here every one of the venue's 15 broken
bodies must read as what it is, "the venue's answer could not be read": a create
or cancel whose outcome is unknown, a lookup or a holdings read that must be asked
again. Never "rejected", never "not found" for an order that exists. Once the fault
is gone, the order that was placed is found by its client order id.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any, get_args

import ccxt
import pytest

from orchestrator.bybit import client as bybit
from orchestrator.bybit.client import answer_problem, endpoint_of, make_exchange
from orchestrator.exceptions import OrderOutcomeUnknown
from orchestrator.execution.live import LiveExecutor
from orchestrator.market.ticker import TickerService
from orchestrator.models import Category, Holdings, OrderRequest, OrderStatus, Side
from orchestrator.position.errors import DeltaHedgeError
from orchestrator.position.manager import PositionManager
from orchestrator.settings import TradingSettings, VenueTiming
from orchestrator.venue import DEFAULT_API_KEY, DEFAULT_SECRET, FaultRule, Venue, make_client
from orchestrator.venue.faults import Malformed, malformed
from tests.support import BTC_PERP, BTC_SPOT, FakeClock

pytestmark = pytest.mark.anyio
D = Decimal
SPOT, PERP = BTC_SPOT.symbol, BTC_PERP.symbol
VARIANTS: list[str] = list(get_args(Malformed))
TIMING = VenueTiming(request_timeout_ms=1000, recv_window_ms=1000, clock_skew_ms=0)
# "unknown_status" changes only orderStatus: an answer that carries none (a create's, a
# cancel's, the wallet's, the positions') arrives intact and must read as the sound
# answer it is.
NO_STATUS = "unknown_status"


@pytest.fixture
async def client(bybit_venue: Venue) -> AsyncIterator[Any]:
    exchange = make_exchange(DEFAULT_API_KEY, DEFAULT_SECRET, TIMING, url=bybit_venue.url)
    try:
        yield exchange
    finally:
        await exchange.close()


@pytest.fixture
def executor(client: Any) -> LiveExecutor:
    return LiveExecutor(
        client, timing=TIMING, fill_poll_interval=0.01, fill_poll_attempts=3, read_attempts=2
    )


def order(symbol: str, side: Side, qty: str, cid: str) -> OrderRequest:
    category = Category.SPOT if symbol == SPOT else Category.LINEAR
    return OrderRequest(
        symbol=symbol, side=side, quantity=D(qty), category=category, client_order_id=cid
    )


def short(cid: str) -> OrderRequest:
    return order(PERP, Side.SELL, "0.001", cid)


def break_answers(venue: Venue, endpoint: str, how: str, *, times: int | None = 1) -> Any:
    """The venue carries the request out (a create places its order), then answers ``how``."""
    return venue.faults.add(
        FaultRule(kind="malformed", endpoint=endpoint, body=how, accept=True, times=times)
    )


def assert_names_the_cause(error: BaseException, endpoint: str) -> None:
    text = str(error)
    assert f"/v5/{endpoint}" in text
    assert "HTTP 200" in text
    assert "unreadable" in text
    assert DEFAULT_API_KEY not in text
    assert DEFAULT_SECRET not in text


# -- create --------------------------------------------------------------------------


@pytest.mark.parametrize("how", VARIANTS)
async def test_a_create_answered_malformed_is_unknown_then_found_by_client_id(
    bybit_venue: Venue, executor: LiveExecutor, how: str
) -> None:
    break_answers(bybit_venue, "order/create", how)
    if how == NO_STATUS:
        placed = await executor.place_order(short("bad-create"))
        assert placed.status is OrderStatus.FILLED
    else:
        with pytest.raises(OrderOutcomeUnknown) as raised:
            await executor.place_order(short("bad-create"))
        assert "bad-create" in str(raised.value)
        assert "may be live" in str(raised.value)
        assert_names_the_cause(raised.value, "order/create")

    [placed_order] = bybit_venue.orders.values()  # placed once, whatever the answer said
    found = await executor.fetch_order_by_client_id("bad-create", PERP)
    assert found is not None
    assert (found.order_id, found.status, found.filled_qty) == (
        placed_order.order_id,
        OrderStatus.FILLED,
        D("0.001"),
    )
    assert bybit_venue.audit.placed_twice() == []


@pytest.mark.parametrize("how", VARIANTS)
async def test_a_fill_read_answered_malformed_is_unknown_never_a_guess(
    bybit_venue: Venue, executor: LiveExecutor, how: str
) -> None:
    rule = break_answers(bybit_venue, "order/realtime", how, times=None)
    with pytest.raises(OrderOutcomeUnknown, match="accepted as 1, but reading its fill failed"):
        await executor.place_order(short("bad-fill"))

    bybit_venue.faults.remove(rule)
    found = await executor.fetch_order_by_client_id("bad-fill", PERP)
    assert found is not None
    assert (found.order_id, found.status) == ("1", OrderStatus.FILLED)


# -- lookups -------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["order/realtime", "order/history"])
@pytest.mark.parametrize("how", VARIANTS)
async def test_a_lookup_answered_malformed_is_unknown_never_not_found(
    bybit_venue: Venue, executor: LiveExecutor, how: str, endpoint: str
) -> None:
    placed = await executor.place_order(short("bad-look"))
    if endpoint == "order/history":
        # As after a venue restart: realtime lists no closed order, so history decides.
        bybit_venue.faults.add(FaultRule(kind="hide_closed", times=None))
    rule = break_answers(bybit_venue, endpoint, how, times=None)
    with pytest.raises(OrderOutcomeUnknown) as raised:
        await executor.fetch_order_by_client_id("bad-look", PERP)
    assert "bad-look: looking it up failed" in str(raised.value)
    assert_names_the_cause(raised.value, endpoint)

    bybit_venue.faults.remove(rule)
    assert await executor.fetch_order_by_client_id("bad-look", PERP) == placed


@pytest.mark.parametrize("how", VARIANTS)
async def test_a_lookup_answered_malformed_once_is_asked_again(
    bybit_venue: Venue, executor: LiveExecutor, how: str
) -> None:
    placed = await executor.place_order(short("once"))
    break_answers(bybit_venue, "order/realtime", how)  # a read is retried: the next answers
    assert await executor.fetch_order_by_client_id("once", PERP) == placed


# -- holdings ------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["account/wallet-balance", "position/list"])
@pytest.mark.parametrize("how", VARIANTS)
async def test_holdings_answered_malformed_are_unknown(
    bybit_venue: Venue, executor: LiveExecutor, how: str, endpoint: str
) -> None:
    await executor.place_order(order(SPOT, Side.BUY, "0.001", "hold-spot"))
    await executor.place_order(short("hold-perp"))
    held = Holdings(spot=D("0.000999"), perp_short=D("0.001"))  # the spot fee is in BTC
    assert await executor.fetch_holdings(BTC_SPOT, BTC_PERP) == held

    rule = break_answers(bybit_venue, endpoint, how, times=None)
    if how == NO_STATUS:
        assert await executor.fetch_holdings(BTC_SPOT, BTC_PERP) == held
    else:
        with pytest.raises(OrderOutcomeUnknown, match="reading balances and positions failed"):
            await executor.fetch_holdings(BTC_SPOT, BTC_PERP)

    bybit_venue.faults.remove(rule)
    assert await executor.fetch_holdings(BTC_SPOT, BTC_PERP) == held


# -- cancel --------------------------------------------------------------------------


@pytest.mark.parametrize("how", VARIANTS)
async def test_a_cancel_answered_malformed_is_unknown(
    bybit_venue: Venue, executor: LiveExecutor, how: str
) -> None:
    bybit_venue.faults.add(FaultRule(kind="fill_late", hold_ms=60_000))  # it works, unfilled
    placed = await executor.place_order(short("bad-cancel"))
    assert placed.status is OrderStatus.OPEN

    break_answers(bybit_venue, "order/cancel", how)  # cancelled, then the answer breaks
    if how == NO_STATUS:
        assert await executor.cancel_order(placed.order_id, PERP) is True
    else:
        with pytest.raises(OrderOutcomeUnknown, match="cancel may or may not have happened"):
            await executor.cancel_order(placed.order_id, PERP)

    found = await executor.fetch_order_by_client_id("bad-cancel", PERP)
    assert found is not None
    assert (found.order_id, found.status) == (placed.order_id, OrderStatus.CANCELLED)


# -- a position opened through the manager -------------------------------------------


def venue_holdings(venue: Venue) -> tuple[Decimal, Decimal]:
    """(BTC in the wallet, BTCUSDT perp short) as the venue's book has them."""
    position = venue.book.positions.get("BTCUSDT")
    return venue.book.wallet.get("BTC", D(0)), -position.size if position else D(0)


@pytest.mark.parametrize("how", VARIANTS)
async def test_an_open_whose_perp_create_answer_is_malformed_ends_hedged_or_flat(
    bybit_venue: Venue, executor: LiveExecutor, how: str
) -> None:
    ticker = TickerService(clock=FakeClock())
    ticker.update(SPOT, D(60000))
    ticker.update(PERP, D(60000))
    settings = TradingSettings(max_position_size_usd=D(1200), order_timeout_seconds=5)
    manager = PositionManager(executor, ticker, settings, run_nonce="malfrm")
    bybit_venue.faults.add(
        FaultRule(kind="malformed", endpoint="order/create", category="linear", body=how)
    )

    try:
        position = await manager.open_position(BTC_SPOT, BTC_PERP, D(5000), position_id="m1")
    except DeltaHedgeError as exc:
        position = exc.position

    # The perp order was found by its client id: the open went through, sent once.
    assert position.state == "validated", position.reason
    assert (position.spot_qty, position.perp_qty) == (D("0.01998"), D("0.02"))
    spot, perp_short = venue_holdings(bybit_venue)
    assert (spot, perp_short) == (position.spot_qty, position.perp_qty)
    assert D(0) <= perp_short - spot <= perp_short * D("0.001")  # hedged but for the fee coin
    assert bybit_venue.audit.placed_twice() == []
    assert bybit_venue.audit.sent_twice() == []


async def test_an_open_whose_lookups_are_unreadable_for_a_moment_ends_hedged_or_flat(
    bybit_venue: Venue, executor: LiveExecutor
) -> None:
    ticker = TickerService(clock=FakeClock())
    ticker.update(SPOT, D(60000))
    ticker.update(PERP, D(60000))
    settings = TradingSettings(max_position_size_usd=D(1200), order_timeout_seconds=5)
    manager = PositionManager(executor, ticker, settings, run_nonce="malfrm")
    bybit_venue.faults.add(
        FaultRule(kind="malformed", endpoint="order/create", category="linear", body="html")
    )
    bybit_venue.faults.add(  # the perp leg's lookups: an HTML page for a second
        FaultRule(
            kind="malformed", endpoint="order/realtime,order/history", category="linear",
            body="html", times=None, until_s=1.0,
        )
    )  # fmt: skip

    try:
        position = await manager.open_position(BTC_SPOT, BTC_PERP, D(5000), position_id="m2")
    except DeltaHedgeError as exc:
        position = exc.position

    spot, perp_short = venue_holdings(bybit_venue)
    assert D(0) <= perp_short - spot <= perp_short * D("0.001"), (position.state, spot, perp_short)
    assert bybit_venue.audit.placed_twice() == []


# -- the checks themselves -----------------------------------------------------------


def sound(result: dict[str, Any]) -> dict[str, Any]:
    return {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": 1}


ORDER_ENTRY = {
    "orderId": "fd4300ae-7847-404e-b947-b46980a4d140",
    "orderLinkId": "cid-1",
    "symbol": "BTCUSDT",
    "side": "Sell",
    "orderStatus": "PartiallyFilledCanceled",
    "qty": "0.01",
    "cumExecQty": "0.004",
    "cumExecValue": "240",
    "cumExecFee": "0.132",
    "avgPrice": "60000",
    "price": "0",
    "leavesQty": "0",
    "cumFeeDetail": {"USDT": "0.132"},
}
SAMPLES: dict[str, dict[str, Any]] = {
    "order/create": {"orderId": "1321003749386327552", "orderLinkId": "cid-1"},
    "order/cancel": {"orderId": "1321003749386327552", "orderLinkId": ""},
    "order/realtime": {"category": "linear", "list": [ORDER_ENTRY], "nextPageCursor": ""},
    "order/history": {"category": "spot", "list": [], "nextPageCursor": ""},
    "position/list": {
        "category": "linear",
        "list": [{"symbol": "BTCUSDT", "side": "", "size": "0", "avgPrice": "0"}],
    },
    "account/wallet-balance": {
        "list": [{"accountType": "UNIFIED", "coin": [{"coin": "BTC", "walletBalance": "0.5"}]}]
    },
}


@pytest.mark.parametrize("endpoint", list(SAMPLES))
def test_sound_answers_pass_and_broken_ones_are_named(endpoint: str) -> None:
    envelope = sound(SAMPLES[endpoint])
    assert answer_problem(endpoint, envelope) is None
    for how in VARIANTS:
        _, _, text = malformed(envelope, how)
        try:  # as ccxt parses it (orjson: a bare NaN is not JSON)
            parsed = json.loads(text, parse_constant=lambda _: None) if text else None
        except ValueError:
            parsed = None
        problem = answer_problem(endpoint, parsed)
        if parsed == envelope:
            assert problem is None, how  # this variant leaves this answer intact
        else:
            assert problem is not None, how


def test_an_error_answer_is_left_to_ccxt_and_the_endpoint_is_named() -> None:
    refusal = {"retCode": 110007, "retMsg": "ab not enough for new order", "result": {}}
    assert answer_problem("order/create", refusal) is None  # ccxt maps Bybit's retCode
    assert answer_problem("order/create", {**refusal, "retCode": "110007"}) is not None
    assert endpoint_of("http://127.0.0.1:1/v5/order/realtime?category=linear") == "order/realtime"

    # Retried as a read, ambiguous as a create: a NetworkError (and a BadResponse).
    assert issubclass(bybit.UnreadableAnswer, ccxt.NetworkError)
    assert issubclass(bybit.UnreadableAnswer, ccxt.BadResponse)


@pytest.mark.parametrize("how", VARIANTS)
async def test_even_through_plain_ccxt_a_broken_create_is_never_rejected(
    bybit_venue: Venue, how: str
) -> None:
    """Without make_exchange's checks (a client built elsewhere) the LiveExecutor still
    reads no broken create answer as a refusal: no usable id, a parse error or ccxt's
    catch-all ExchangeError naming no retCode are all "outcome unknown"."""
    client = make_client(bybit_venue.url, timeout_ms=1000)
    executor = LiveExecutor(client, fill_poll_interval=0.01, read_attempts=2)
    break_answers(bybit_venue, "order/create", how)
    try:
        try:
            result = await executor.place_order(short("plain"))
        except OrderOutcomeUnknown:
            pass
        else:  # ccxt read the answer as it was meant (retcode_string, unknown_status)
            assert (result.status, result.order_id) == (OrderStatus.FILLED, "1")
        found = await executor.fetch_order_by_client_id("plain", PERP)
    finally:
        await client.close()
    assert found is not None
    assert found.status is OrderStatus.FILLED
