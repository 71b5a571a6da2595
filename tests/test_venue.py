"""The loopback Bybit v5 venue (orchestrator.venue) through real ccxt (async bybit):
authentication, Bybit's error codes per category, fees, positions, partial fills,
funding executions and the audit record."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import aiohttp
import anyio
import ccxt
import pytest

from orchestrator.venue import FaultRule, Venue, make_client
from orchestrator.venue.auth import check, sign
from orchestrator.venue.codes import VenueError

pytestmark = pytest.mark.anyio
D = Decimal
SPOT, PERP = "BTC/USDT", "BTC/USDT:USDT"


def dec(value: Any) -> Decimal:
    """ccxt's float as the decimal the venue wrote."""
    return Decimal(str(value))


def ret_code(exc: BaseException) -> str:
    """The retCode inside ccxt's message, which carries the venue's JSON body."""
    text = str(exc)
    return text.split('"retCode":', 1)[1].split(",", 1)[0]


async def buy(client: Any, symbol: str, qty: float, cid: str, **params: Any) -> Any:
    return await client.create_order(
        symbol, "market", "buy", qty, None, {"clientOrderId": cid, **params}
    )


async def sell(client: Any, symbol: str, qty: float, cid: str, **params: Any) -> Any:
    return await client.create_order(
        symbol, "market", "sell", qty, None, {"clientOrderId": cid, **params}
    )


async def lookup(client: Any, symbol: str, cid: str) -> Any:
    [order] = await client.fetch_open_orders(symbol, params={"orderLinkId": cid})
    return order


# -- authentication -----------------------------------------------------------------


def test_time_rule_is_bybits_window() -> None:
    """server_time - recv_window <= timestamp < server_time + 1000 (Bybit's guide)."""
    now, window = 1_700_000_000_000, 5000

    def headers(ts: int) -> dict[str, str]:
        signature = sign("s", str(ts), "k", str(window), "category=spot")
        return {
            "X-BAPI-API-KEY": "k",
            "X-BAPI-TIMESTAMP": str(ts),
            "X-BAPI-RECV-WINDOW": str(window),
            "X-BAPI-SIGN": signature,
        }

    for ts in (now - window, now, now + 999):
        assert check(headers(ts), "category=spot", {"k": "s"}, now) == (ts, window)
    for ts in (now - window - 1, now + 1000):
        with pytest.raises(VenueError) as raised:
            check(headers(ts), "category=spot", {"k": "s"}, now)
        assert raised.value.code == 10002
        assert "recv_window" in raised.value.message


async def test_bad_key_and_bad_signature_are_refused(bybit_venue: Venue) -> None:
    for key, secret, code in (("nobody", "venue-secret", "10003"), ("venue-key", "wrong", "10004")):
        client = make_client(bybit_venue.url, api_key=key, secret=secret)
        try:
            await client.load_markets()  # public: no signature needed
            with pytest.raises(ccxt.AuthenticationError) as raised:
                await buy(client, SPOT, 0.01, f"auth-{code}")
        finally:
            await client.close()
        assert ret_code(raised.value) == code
    assert bybit_venue.bad_signatures == 1
    assert [r.outcome for r in bybit_venue.audit.creates] == ["auth", "auth"]
    assert bybit_venue.orders == {}


@pytest.mark.parametrize(
    ("skew_ms", "window", "refused"),
    [
        (10_000, 5000, True),  # signed 10 s ago: beyond the 5 s window
        (10_000, 20_000, False),  # ... within a 20 s one
        (-1500, 5000, True),  # 1.5 s ahead of the server
        (-500, 5000, False),  # 0.5 s ahead: allowed
    ],
)
async def test_stale_or_early_timestamp_refused_with_10002(
    bybit_venue: Venue, venue_client: Any, skew_ms: int, window: int, refused: bool
) -> None:
    venue_client.options["timeDifference"] = skew_ms  # ccxt signs now - timeDifference
    venue_client.options["recvWindow"] = window
    if refused:
        with pytest.raises(ccxt.InvalidNonce) as raised:
            await buy(venue_client, SPOT, 0.01, "clock-1")
        assert ret_code(raised.value) == "10002"
        assert "recv_window" in str(raised.value)
        [record] = bybit_venue.audit.creates
        assert (record.outcome, record.ret_code) == ("auth", 10002)
        assert bybit_venue.orders == {}
    else:
        await buy(venue_client, SPOT, 0.01, "clock-1")
        [record] = bybit_venue.audit.creates
        assert record.outcome == "placed"
        assert record.recv_window == window


async def test_venue_clock_offset_is_what_the_window_is_checked_against(
    bybit_venue: Venue, venue_client: Any
) -> None:
    bybit_venue.clock_offset_ms = 60_000  # the venue's clock runs a minute ahead
    with pytest.raises(ccxt.InvalidNonce):
        await venue_client.fetch_balance()
    server = await venue_client.fetch_time()
    assert server - time.time() * 1000 > 59_000


# -- Bybit's error codes, per category ------------------------------------------------


async def raw_create(client: Any, **body: Any) -> Any:
    """A create ccxt signs but does not reshape: reaches checks ccxt's own precision hides."""
    unit = {"marketUnit": "baseCoin"} if body["category"] == "spot" else {}
    return await client.privatePostV5OrderCreate({"orderType": "Market", **unit, **body})


async def provoke(venue: Venue, client: Any, case: str, symbol: str) -> None:
    """Send what ``case`` names on ``symbol``'s market (the last request must be refused)."""
    category = "spot" if symbol == SPOT else "linear"
    if case == "insufficient balance":  # 2 BTC at 60,000: more than 100,000 USDT
        await (buy if symbol == SPOT else sell)(client, symbol, 2, f"big-{category}")
    elif case == "duplicate client id":
        await buy(client, symbol, 0.001, f"dup-{category}")
        await buy(client, symbol, 0.001, f"dup-{category}")
    elif case == "order not found":
        await client.cancel_order("no-such-order", symbol)
    elif case == "quantity above max":  # spot maxOrderQty 83, perp maxMktOrderQty 119
        await buy(client, symbol, 84 if symbol == SPOT else 120, f"max-{category}")
    elif case == "notional below min":  # minimum 5 USDT
        venue.set_price(symbol, D(1000))
        await buy(client, symbol, 0.001, f"small-{category}")
    elif case == "quantity off the step":  # steps 0.000001 and 0.001
        qty = "0.0000015" if symbol == SPOT else "0.0015"
        await raw_create(client, category=category, symbol="BTCUSDT", side="Buy", qty=qty)
    else:
        await raw_create(client, category=category, symbol="DOGEUSDT", side="Buy", qty="1")


INSUFFICIENT = ccxt.InsufficientFunds


@pytest.mark.parametrize(
    ("case", "spot", "linear"),
    [
        ("insufficient balance", ("170131", INSUFFICIENT), ("110007", INSUFFICIENT)),
        ("duplicate client id", ("170141", ccxt.InvalidOrder), ("110072", ccxt.InvalidOrder)),
        ("order not found", ("170213", ccxt.OrderNotFound), ("110001", ccxt.OrderNotFound)),
        ("quantity above max", ("170135", ccxt.InvalidOrder), ("10001", ccxt.BadRequest)),
        ("notional below min", ("170140", ccxt.InvalidOrder), ("110094", ccxt.InvalidOrder)),
        ("quantity off the step", ("170137", ccxt.InvalidOrder), ("10001", ccxt.BadRequest)),
        ("unknown symbol", ("170121", ccxt.InvalidOrder), ("10001", ccxt.BadRequest)),
    ],
)
async def test_error_codes_differ_between_spot_and_linear(
    bybit_venue: Venue,
    venue_client: Any,
    case: str,
    spot: tuple[str, type[Exception]],
    linear: tuple[str, type[Exception]],
) -> None:
    for symbol, (code, error) in ((SPOT, spot), (PERP, linear)):
        with pytest.raises(error) as raised:
            await provoke(bybit_venue, venue_client, symbol=symbol, case=case)
        assert ret_code(raised.value) == code, case
    filled = sum(o.filled > 0 for o in bybit_venue.orders.values())
    assert filled == (2 if case == "duplicate client id" else 0)


async def test_spot_quantity_below_minimum_is_170136(venue_client: Any) -> None:
    with pytest.raises(ccxt.InvalidOrder) as raised:
        await buy(venue_client, SPOT, 0.000005, "tiny")  # minOrderQty 0.000011
    assert ret_code(raised.value) == "170136"


async def test_reduce_only_that_would_open_or_increase_is_refused_with_110017(
    bybit_venue: Venue, venue_client: Any
) -> None:
    with pytest.raises(ccxt.InvalidOrder) as raised:
        await buy(venue_client, PERP, 0.01, "ro-1", reduceOnly=True)  # no position
    assert ret_code(raised.value) == "110017"
    await sell(venue_client, PERP, 0.01, "short-1")
    with pytest.raises(ccxt.InvalidOrder) as raised:
        await sell(venue_client, PERP, 0.01, "ro-2", reduceOnly=True)  # would increase the short
    assert ret_code(raised.value) == "110017"
    # Larger than the position: Bybit trims it to the position and closes it.
    await buy(venue_client, PERP, 0.05, "ro-3", reduceOnly=True)
    closed = await lookup(venue_client, PERP, "ro-3")
    assert (dec(closed["amount"]), dec(closed["filled"])) == (D("0.01"), D("0.01"))
    [position] = await venue_client.fetch_positions([PERP])
    assert dec(position["contracts"]) == 0


async def test_set_leverage_twice_is_110043(bybit_venue: Venue, venue_client: Any) -> None:
    await venue_client.set_leverage(2, PERP)
    with pytest.raises(ccxt.BadRequest) as raised:
        await venue_client.set_leverage(2, PERP)
    assert ret_code(raised.value) == "110043"
    await sell(venue_client, PERP, 0.02, "lev-1")
    [position] = await venue_client.fetch_positions([PERP])
    assert (dec(position["leverage"]), dec(position["initialMargin"])) == (D(2), D(600))


# -- fills, fees and positions ------------------------------------------------------


async def test_spot_buy_fee_in_base_coin_sell_fee_in_quote(
    bybit_venue: Venue, venue_client: Any
) -> None:
    await buy(venue_client, SPOT, 0.01, "s-buy")
    bought = await lookup(venue_client, SPOT, "s-buy")
    assert bought["fee"]["currency"] == "BTC"
    assert dec(bought["fee"]["cost"]) == D("0.00001")  # 0.1 % of 0.01 BTC
    assert bought["info"]["cumFeeDetail"] == {"BTC": "0.00001"}
    assert bought["info"]["marketUnit"] == "baseCoin"
    assert "tpslMode" not in bought["info"]
    balance = await venue_client.fetch_balance()
    assert dec(balance["BTC"]["total"]) == D("0.00999")
    assert dec(balance["USDT"]["total"]) == D(99_400)

    await sell(venue_client, SPOT, 0.00999, "s-sell")
    sold = await lookup(venue_client, SPOT, "s-sell")
    assert (sold["fee"]["currency"], dec(sold["fee"]["cost"])) == ("USDT", D("0.5994"))
    balance = await venue_client.fetch_balance()
    assert dec(balance["BTC"]["total"]) == 0
    assert bybit_venue.book.wallet["USDT"] == D("99998.8006")  # + 599.4 - 0.5994
    assert bybit_venue.audit.oversold() == {}


async def test_spot_buy_without_base_unit_spends_quote(venue_client: Any) -> None:
    # A price makes ccxt send the quote amount to spend (notes: pass no price).
    await venue_client.create_order(SPOT, "market", "buy", 0.01, 60000, {"clientOrderId": "q"})
    order = await lookup(venue_client, SPOT, "q")
    assert order["info"]["marketUnit"] == "quoteCoin"
    assert order["info"]["qty"] == "600"
    assert dec(order["filled"]) == D("0.01")


async def test_perp_netted_position_margin_fees_and_realised_pnl(
    bybit_venue: Venue, venue_client: Any
) -> None:
    await sell(venue_client, PERP, 0.02, "p-1")
    order = await lookup(venue_client, PERP, "p-1")
    assert order["info"]["tpslMode"] == ""  # how ccxt tells a contract order
    assert order["fee"] == {"cost": 0.66, "currency": "USDT"}  # 0.055 % of 1,200
    balance = await venue_client.fetch_balance()
    assert dec(balance["USDT"]["used"]) == D(1200)  # 1x margin
    assert dec(balance["USDT"]["total"]) == D("99999.34")

    bybit_venue.set_price("BTCUSDT", D(59_000))
    await buy(venue_client, PERP, 0.03, "p-2")  # closes the short at +20, opens 0.01 long
    [position] = await venue_client.fetch_positions([PERP])
    assert (position["side"], dec(position["contracts"])) == ("long", D("0.01"))
    assert dec(position["entryPrice"]) == D(59_000)
    assert bybit_venue.book.wallet["USDT"] == D("99999.34") + 20 - D("0.9735")


@pytest.mark.parametrize(
    ("side", "rate", "exec_fee"),
    [
        ("sell", "0.0001", "-0.06"),  # a short receives a positive rate: negative fee
        ("buy", "0.0001", "0.06"),  # a long pays it
        ("sell", "-0.0002", "0.12"),  # a short pays a negative rate
    ],
)
async def test_funding_executions_carry_bybits_sign(
    bybit_venue: Venue, venue_client: Any, side: str, rate: str, exec_fee: str
) -> None:
    await (sell if side == "sell" else buy)(venue_client, PERP, 0.01, "f-1")
    before = bybit_venue.book.wallet["USDT"]
    bybit_venue.settle_funding("BTCUSDT", rate, time_ms=1_704_096_000_000)
    # Asked from its time: Bybit lists the last 7 days unless told.
    [payment] = await venue_client.fetch_funding_history(PERP, 1_704_096_000_000)
    assert payment["info"]["execType"] == "Funding"
    assert D(payment["info"]["execFee"]) == D(exec_fee)
    assert payment["info"]["feeRate"] == rate
    assert (dec(payment["amount"]), payment["code"]) == (D(exec_fee), "USDT")
    assert payment["timestamp"] == 1_704_096_000_000
    assert bybit_venue.book.wallet["USDT"] == before - D(exec_fee)


HOUR_MS, WEEK_MS = 3_600_000, 7 * 24 * 3_600_000


async def test_executions_are_listed_as_bybit_lists_them(
    bybit_venue: Venue, venue_client: Any
) -> None:
    """/v5/execution/list: newest first, one window of at most 7 days, pages of
    ``limit`` (1 to 100, 50 unless asked) linked by ``nextPageCursor``."""
    await sell(venue_client, PERP, 0.01, "ex-1")
    now = bybit_venue.server_ms()
    # 300 hourly settlements back over 12.5 days, half an hour off the window's edges.
    times = [now - i * HOUR_MS - HOUR_MS // 2 for i in range(300)]
    for t in times:
        bybit_venue.settle_funding("BTCUSDT", "0.0001", time_ms=t)

    async def listed(**params: str) -> tuple[list[int], str]:
        query = {"category": "linear", "symbol": "BTCUSDT", "execType": "Funding", **params}
        answer = (await venue_client.privateGetV5ExecutionList(query))["result"]
        return [int(e["execTime"]) for e in answer["list"]], answer["nextPageCursor"]

    last_week = [t for t in times if t >= now - WEEK_MS]
    assert len(last_week) == 168
    # Neither time: the last 7 days, the newest 50, and a cursor to the rest.
    page, cursor = await listed()
    assert (page, bool(cursor)) == (last_week[:50], True)
    # Along the cursor, 100 a page: the window once, in order, then no cursor.
    pages = [await listed(limit="100")]
    while pages[-1][1]:
        pages.append(await listed(limit="100", cursor=pages[-1][1]))
    assert [len(p) for p, _ in pages] == [100, 68]
    assert [t for p, _ in pages for t in p] == last_week
    # startTime alone: the 7 days from it; endTime alone: the 7 days to it.
    start, end = times[-1], times[100]
    from_start = [t for t in times if start <= t <= start + WEEK_MS]
    assert (await listed(startTime=str(start), limit="100"))[0] == from_start[:100]
    to_end = [t for t in times if end - WEEK_MS <= t <= end]
    assert (await listed(endTime=str(end), limit="100"))[0] == to_end[:100]
    # Refused (10001): a page of 0 or over 100; a window of more than 7 days.
    for bad in (
        {"limit": "0"},
        {"limit": "101"},
        {"startTime": str(start), "endTime": str(start + WEEK_MS + 1)},
    ):
        with pytest.raises(ccxt.BadRequest) as refused:
            await listed(**bad)
        assert ret_code(refused.value) == "10001", bad
    # A trade is listed by the same rules, under its own execType.
    assert len((await listed(execType="Trade"))[0]) == 1


async def test_no_position_no_funding(bybit_venue: Venue) -> None:
    assert bybit_venue.settle_funding("BTCUSDT", "0.001") is None
    assert bybit_venue.book.executions == []


async def test_partial_fill_statuses(bybit_venue: Venue, venue_client: Any) -> None:
    bybit_venue.faults.add(FaultRule(kind="partial", fill_ratio=D("0.4"), hold_reads=1))
    await sell(venue_client, PERP, 0.01, "part-1")

    working = await lookup(venue_client, PERP, "part-1")
    assert working["info"]["orderStatus"] == "PartiallyFilled"
    assert working["status"] == "open"
    assert (dec(working["filled"]), dec(working["remaining"])) == (D("0.004"), D("0.006"))
    info = working["info"]
    assert (info["cumExecQty"], info["cumExecValue"]) == ("0.004", "240.000")
    assert info["cumExecFee"] == info["cumFeeDetail"]["USDT"] == "0.13200000"

    done = await lookup(venue_client, PERP, "part-1")
    assert done["info"]["orderStatus"] == "PartiallyFilledCanceled"
    assert done["status"] == "closed"  # compare filled with amount, not the status
    assert (dec(done["filled"]), dec(done["amount"])) == (D("0.004"), D("0.01"))
    # fetch_closed_orders asks for Filled only and misses it (as the notes warn).
    assert await venue_client.fetch_closed_orders(PERP) == []
    [found] = await venue_client.fetch_canceled_and_closed_orders(PERP)
    assert found["clientOrderId"] == "part-1"
    [position] = await venue_client.fetch_positions([PERP])
    assert dec(position["contracts"]) == D("0.004")


async def test_partial_fill_of_nothing_is_cancelled(bybit_venue: Venue, venue_client: Any) -> None:
    bybit_venue.faults.add(FaultRule(kind="partial", fill_ratio=D(0)))
    await buy(venue_client, SPOT, 0.01, "none-1")
    order = await lookup(venue_client, SPOT, "none-1")
    assert (order["info"]["orderStatus"], order["status"], order["filled"]) == (
        "Cancelled",
        "canceled",
        0,
    )
    assert "BTC" not in bybit_venue.book.wallet


async def test_late_fill_holds_then_fills_and_cancel_in_between(
    bybit_venue: Venue, venue_client: Any
) -> None:
    bybit_venue.faults.add(FaultRule(kind="fill_late", hold_ms=500, times=None))
    await buy(venue_client, SPOT, 0.01, "late-1")
    await buy(venue_client, SPOT, 0.01, "late-2")
    assert (await lookup(venue_client, SPOT, "late-1"))["info"]["orderStatus"] == "New"
    balance = await venue_client.fetch_balance()
    assert dec(balance["USDT"]["used"]) == D(1200)  # held for both
    await venue_client.cancel_order(None, SPOT, {"orderLinkId": "late-2"})

    await anyio.sleep(0.6)
    filled = await lookup(venue_client, SPOT, "late-1")
    cancelled = await lookup(venue_client, SPOT, "late-2")
    assert (filled["info"]["orderStatus"], dec(filled["filled"])) == ("Filled", D("0.01"))
    assert (cancelled["info"]["orderStatus"], cancelled["filled"]) == ("Cancelled", 0)
    with pytest.raises(ccxt.OrderNotFound):
        await venue_client.cancel_order(None, SPOT, {"orderLinkId": "late-1"})
    balance = await venue_client.fetch_balance()
    assert dec(balance["USDT"]["used"]) == 0
    assert dec(balance["BTC"]["total"]) == D("0.00999")


async def test_slippage_moves_the_fill_against_the_taker(
    bybit_venue: Venue, venue_client: Any
) -> None:
    bybit_venue.book.slippage = D("0.001")
    await buy(venue_client, SPOT, 0.01, "slip-b")
    await sell(venue_client, PERP, 0.01, "slip-s")
    assert dec((await lookup(venue_client, SPOT, "slip-b"))["average"]) == D(60_060)
    assert dec((await lookup(venue_client, PERP, "slip-s"))["average"]) == D(59_940)


async def test_tickers_and_funding_rate(bybit_venue: Venue, venue_client: Any) -> None:
    bybit_venue.funding_rates["BTCUSDT"] = D("0.00025")
    ticker = await venue_client.fetch_ticker(PERP)
    assert (ticker["last"], ticker["info"]["markPrice"]) == (60000, "60000")
    rate = await venue_client.fetch_funding_rate(PERP)
    assert (rate["fundingRate"], rate["interval"]) == (0.00025, "8h")
    assert rate["fundingTimestamp"] % (8 * 3_600_000) == 0
    assert (await venue_client.fetch_ticker(SPOT))["last"] == 60000


# -- the audit record ---------------------------------------------------------------


async def test_audit_records_every_create_where_it_arrives(
    bybit_venue: Venue, venue_client: Any
) -> None:
    bybit_venue.faults.add(
        FaultRule(kind="reject", error="insufficient_balance", category="linear")
    )
    before = time.time_ns()
    await buy(venue_client, SPOT, 0.01, "pos1-so1")
    with pytest.raises(ccxt.InsufficientFunds):
        await sell(venue_client, PERP, 0.01, "pos1-po1")
    await sell(venue_client, PERP, 0.01, "pos1-po2")

    spot, refused, perp = bybit_venue.audit.creates
    assert before < spot.arrival_ns < refused.arrival_ns < perp.arrival_ns < time.time_ns()
    assert (spot.category, spot.side, spot.qty, spot.order_link_id) == (
        "spot",
        "Buy",
        "0.01",
        "pos1-so1",
    )
    assert (refused.outcome, refused.ret_code, refused.fault) == ("rejected", 110007, "reject")
    assert perp.outcome == "placed"
    assert perp.order_id in bybit_venue.orders
    assert bybit_venue.audit.arrival_skew_ms("pos1-so1", "pos1-po2") > 0
    assert bybit_venue.audit.placed_twice() == []
    assert bybit_venue.audit.sent_twice() == []
    assert bybit_venue.audit.live_overlaps(bybit_venue.server_ms()) == []

    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{bybit_venue.url}/admin/requests") as answer,
    ):
        listed = (await answer.json())["creates"]
    assert [c["order_link_id"] for c in listed] == ["pos1-so1", "pos1-po1", "pos1-po2"]
    assert [c["outcome"] for c in listed] == ["placed", "rejected", "placed"]
    assert all(isinstance(c["arrival_perf_ns"], int) for c in listed)


async def test_audit_checks_catch_a_second_order_for_one_intent_and_overselling(
    bybit_venue: Venue, venue_client: Any
) -> None:
    bybit_venue.set_balance("BTC", D("0.5"))  # so the venue itself does not refuse the sale
    await buy(venue_client, SPOT, 0.01, "pos2-so1")
    await buy(venue_client, SPOT, 0.01, "pos2-so2")  # a second attempt that also filled
    await sell(venue_client, SPOT, 0.02, "pos2-sc1")  # more than the 0.01998 bought net

    [(intent, first, second)] = bybit_venue.audit.live_overlaps(bybit_venue.server_ms())
    assert intent == "pos2-so"
    assert {first, second} == {
        r.order_id for r in bybit_venue.audit.creates if r.order_link_id.startswith("pos2-so")
    }
    assert bybit_venue.audit.oversold() == {"BTC": D("0.00002")}


# -- admin endpoints ------------------------------------------------------------------


async def test_admin_sets_faults_prices_balances_and_funding(
    bybit_venue: Venue, venue_client: Any
) -> None:
    base = f"{bybit_venue.url}/admin"
    spec = {"rules": [{"kind": "reject", "endpoint": "order/create", "error": "rate_limit"}]}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/faults", json=spec) as answer:
            assert answer.status == 200
        async with http.post(f"{base}/faults", json={"rules": [{"kind": "nope"}]}) as answer:
            assert answer.status == 400
            assert "kind" in (await answer.json())["error"]
        async with http.post(f"{base}/prices", json={"linear:BTCUSDT": "61000"}) as answer:
            assert (await answer.json())["linear:BTCUSDT"] == "61000"
        async with http.post(f"{base}/balances", json={"USDT": "5000"}) as answer:
            assert answer.status == 200

        with pytest.raises(ccxt.RateLimitExceeded):
            await sell(venue_client, PERP, 0.01, "adm-1")
        await sell(venue_client, PERP, 0.01, "adm-2")  # the rule fired once
        async with http.get(f"{base}/faults") as answer:
            [rule] = (await answer.json())["rules"]
        assert (rule["seen"], rule["hits"], rule["exhausted"]) == (2, 1, True)

        async with http.post(
            f"{base}/funding", json={"symbol": "BTCUSDT", "rate": "0.001"}
        ) as answer:
            execution = (await answer.json())["execution"]
        assert D(execution["execFee"]) == D("-0.61")  # 0.01 x 61,000 x 0.001, received
        async with http.get(f"{base}/state") as answer:
            state = await answer.json()
    assert dec((await lookup(venue_client, PERP, "adm-2"))["average"]) == D(61_000)
    assert state["positions"][0]["size"] == "0.01"
    assert state["checks"] == {"placed_twice": [], "live_overlaps": [], "oversold": {}}
    usdt = state["wallet"]["list"][0]["coin"][0]
    assert D(usdt["walletBalance"]) == D(5000) - D("0.3355") + D("0.61")


# -- recorded market data -------------------------------------------------------------


async def test_recorded_mode_replays_prices_and_settles_recorded_funding(
    keep_decimal_context: None,
) -> None:
    from tests.fake_bybit import INSTRUMENTS

    start = 1_704_067_200_000 + 10 * 3_600_000  # 2024-01-01T10:00Z
    async with Venue(data_dir=INSTRUMENTS.parent, recorded=True, start_ms=start) as venue:
        assert venue.book.prices["spot", "BTCUSDT"] == D("42649.99")  # close of the 09:00 bar
        client = make_client(venue.url)
        try:
            await client.load_markets()
            await sell(client, PERP, 0.01, "rec-1")
            settled = venue.advance_to(start + 7 * 3_600_000)  # 17:00, past 16:00
            [payment] = await client.fetch_funding_history(PERP)
            [trade] = await client.fetch_my_trades(PERP)
            bars = await client.fetch_ohlcv(SPOT, "1h", limit=2)
            rate = await client.fetch_funding_rate(PERP)
        finally:
            await client.close()
    [execution] = settled
    assert execution.time_ms == 1_704_124_800_000  # 2024-01-01T16:00Z
    assert execution.fee_rate == D("0.00037274")  # the recorded rate
    assert D(payment["info"]["execFee"]) == -D("0.01") * execution.price * execution.fee_rate
    assert bars[-1][0] == start + 6 * 3_600_000  # the last bar closed by the clock
    assert rate["fundingTimestamp"] == 1_704_153_600_000  # the next recorded settlement
    # The trade's time is the market's, which the venue's answers carry: a client asks
    # for executions by it (Bybit has one clock), not by this machine's.
    assert trade["timestamp"] == start
