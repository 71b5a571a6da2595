"""The pipeline's request context, and the venue's account and market endpoints.

Each endpoint takes the venue and the request's context and returns the ``result``
of a Bybit v5 answer, or raises VenueError (a retCode answer).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from orchestrator.venue import auth, codes
from orchestrator.venue.account import POSITION_MODE_HELD, POSITION_MODE_UNCHANGED, fee_rate_view
from orchestrator.venue.audit import CreateRecord
from orchestrator.venue.codes import VenueError
from orchestrator.venue.faults import FaultRule
from orchestrator.venue.market import HOUR_MS
from orchestrator.venue.records import SETTLE_COIN, ZERO, Position, num
from orchestrator.venue.state import Book
from orchestrator.venue.surface import MarketSurface


@dataclass
class Ctx:
    """One request on its way through the pipeline."""

    request: web.Request
    endpoint: str
    params: dict[str, Any]
    record: CreateRecord | None = None
    rule: FaultRule | None = None
    signed_ms: int = 0
    recv_window: int = auth.DEFAULT_RECV_WINDOW

    @property
    def category(self) -> str | None:
        value = self.params.get("category")
        return str(value) if value is not None else None


Handler = Callable[[Ctx], Awaitable[dict[str, Any]]]


def to_int(value: Any, default: int) -> int:
    try:
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        raise VenueError(codes.PARAMS_ERROR, f"params error: {value!r} is not an integer") from None


def to_decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value is not None else None
    except InvalidOperation:
        return None


# -- account ----------------------------------------------------------------


async def wallet(v: MarketSurface, ctx: Ctx) -> dict[str, Any]:
    if ctx.params.get("accountType") != "UNIFIED":
        raise VenueError(codes.PARAMS_ERROR, "accountType only support UNIFIED")
    view = wallet_view(v.book)
    wanted = ctx.params.get("coin")
    if wanted:
        coins = set(str(wanted).split(","))
        for account in view["list"]:
            account["coin"] = [c for c in account["coin"] if c["coin"] in coins]
    return _empty_list(view, ctx)


async def positions(v: MarketSurface, ctx: Ctx) -> dict[str, Any]:
    if ctx.category != "linear":
        raise VenueError(codes.PARAMS_ERROR, "params error: category only support linear")
    symbol = ctx.params.get("symbol")
    view = {
        "category": "linear",
        "list": positions_view(v.book, symbol),
        "nextPageCursor": "",
    }
    return _empty_list(view, ctx)


async def set_leverage(v: MarketSurface, ctx: Ctx) -> dict[str, Any]:
    p = ctx.params
    v.book.account.may("ContractTrade", "Position")
    if p.get("category") != "linear":
        raise VenueError(codes.PARAMS_ERROR, "params error: category only support linear")
    buy, sell = to_decimal(p.get("buyLeverage")), to_decimal(p.get("sellLeverage"))
    if buy is None or buy != sell:
        raise VenueError(codes.PARAMS_ERROR, "buy leverage must equal sell leverage")
    v.book.set_leverage(str(p.get("symbol", "")), buy)
    return {}


async def switch_mode(v: MarketSurface, ctx: Ctx) -> dict[str, Any]:
    """/v5/position/switch-mode: by symbol, or by coin for every USDT perp (Bybit then
    switches those with no position or order and keeps the rule for new ones)."""
    p = ctx.params
    v.book.account.may("ContractTrade", "Position")
    if p.get("category") != "linear":
        raise VenueError(codes.PARAMS_ERROR, "params error: category only support linear")
    mode = {0: "one-way", 3: "hedge"}.get(to_int(p.get("mode"), -1))
    if mode is None:
        raise VenueError(codes.PARAMS_ERROR, "params error: mode invalid")
    book, account = v.book, v.book.account
    symbol = p.get("symbol")
    if symbol:
        book.instrument("linear", str(symbol))
        if account.mode_of(str(symbol)) == mode:
            raise VenueError(POSITION_MODE_UNCHANGED, "Position mode is not modified")
        if _busy(book, str(symbol)):
            raise VenueError(POSITION_MODE_HELD, "You have position(s) or active order(s)")
        account.modes[str(symbol)] = mode  # type: ignore[assignment]
    elif p.get("coin") == SETTLE_COIN:
        listed = {s for c, s in book.instruments if c == "linear"}
        for sym in listed - {s for s in listed if _busy(book, s)}:
            account.modes[sym] = mode  # type: ignore[assignment]
        account.mode = mode  # type: ignore[assignment]
    else:
        raise VenueError(codes.PARAMS_ERROR, "params error: symbol or coin required")
    return {}


def _busy(book: Book, symbol: str) -> bool:
    held = book.positions.get(symbol)
    working = any(
        o.symbol == symbol and o.category == "linear" and o.is_open for o in book.orders.values()
    )
    return working or (held is not None and held.size != 0)


async def account_info(v: MarketSurface, ctx: Ctx) -> dict[str, Any]:
    return v.book.account.info_view(v.server_ms())


async def api_key(v: MarketSurface, ctx: Ctx) -> dict[str, Any]:
    key = ctx.request.headers.get("X-BAPI-API-KEY", "")
    return v.book.account.key_view(key)


async def fee_rate(v: MarketSurface, ctx: Ctx) -> dict[str, Any]:
    """/v5/account/fee-rate: the account's own rates (the venue charges one taker rate per
    category, and makers the same: it fills market orders only)."""
    category = ctx.params.get("category")
    if category not in ("spot", "linear"):
        raise VenueError(codes.PARAMS_ERROR, "params error: category invalid")
    book = v.book
    rate = book.spot_fee_rate if category == "spot" else book.perp_fee_rate
    symbol = ctx.params.get("symbol")
    listed = [i for (c, _), i in book.instruments.items() if c == category]
    if symbol:
        listed = [book.instrument(category, str(symbol))]
    return {"list": [fee_rate_view(i.symbol, rate, rate, i.base) for i in listed]}


EXECUTIONS_PAGE = 50  # Bybit's default page of executions; at most 100
EXECUTIONS_WINDOW_MS = 7 * 24 * HOUR_MS  # Bybit's widest window of executions


async def executions(v: MarketSurface, ctx: Ctx) -> dict[str, Any]:
    """/v5/execution/list, newest first. As Bybit: one window of at most 7 days
    (``startTime`` alone: the 7 days from it; ``endTime`` alone: the 7 days to it;
    neither: the last 7 days; both further apart: refused), in pages of ``limit`` (1 to
    100, default 50) linked by ``cursor`` (the ``nextPageCursor`` of the page before;
    empty on the last page)."""
    q = ctx.params
    start, end = _executions_window(q, v.market_ms())
    limit = to_int(q.get("limit"), EXECUTIONS_PAGE)
    if not 1 <= limit <= 100:
        raise VenueError(codes.PARAMS_ERROR, "params error: limit must be from 1 to 100")
    found = [
        e
        for e in reversed(v.book.executions)
        if e.category == q.get("category")
        and q.get("symbol", e.symbol) == e.symbol
        and q.get("execType", e.exec_type) == e.exec_type
        and q.get("orderId", e.order_id) == e.order_id
        and q.get("orderLinkId", e.link_id) == e.link_id
        and start <= e.time_ms <= end
    ]
    found.sort(key=lambda e: e.time_ms, reverse=True)  # stable: of one time, the last first
    # The cursor names the first execution of its page: opaque to a client, and it
    # stays right when executions are added between pages.
    after = str(q.get("cursor") or "")
    if after:
        at = next((i for i, e in enumerate(found) if e.exec_id == after), None)
        if at is None:
            raise VenueError(codes.PARAMS_ERROR, "params error: cursor invalid")
        found = found[at:]
    page, rest = found[:limit], found[limit:]
    view = {
        "category": q.get("category"),
        "list": [e.view() for e in page],
        "nextPageCursor": rest[0].exec_id if rest else "",
    }
    return _empty_list(view, ctx)


def _executions_window(q: dict[str, Any], now_ms: int) -> tuple[int, int]:
    """(start, end) of the executions asked for, both included."""
    week = EXECUTIONS_WINDOW_MS
    start, end = (to_int(q.get(k), 0) if q.get(k) else None for k in ("startTime", "endTime"))
    if start is None:
        end = now_ms if end is None else end
        return end - week, end
    if end is None:
        return start, start + week
    if not 0 <= end - start <= week:
        raise VenueError(
            codes.PARAMS_ERROR, "params error: endTime must be after startTime, by 7 days at most"
        )
    return start, end


def _empty_list(view: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
    if ctx.rule is not None and ctx.rule.kind == "empty":
        view["list"] = []
        if view.get("nextPageCursor"):
            view["nextPageCursor"] = ""  # nothing listed: nothing after it either
    return view


# -- market -----------------------------------------------------------------


INSTRUMENTS_PAGE = 500  # Bybit's default page of linear instruments; at most 1000


async def instruments(v: MarketSurface, ctx: Ctx) -> dict[str, Any]:
    """/v5/market/instruments-info, sorted by symbol. As Bybit: linear pages by
    ``limit`` (1 to 1000, default 500) and ``cursor`` (the ``nextPageCursor`` of the page
    before; empty on the last page); spot is not paged (``limit`` and ``cursor`` are
    ignored); ``status`` filters (none is PreLaunch: ccxt asks for those separately, and
    answering them all again would duplicate its markets)."""
    q = ctx.params
    category = ctx.category or ""
    symbol, status = q.get("symbol"), q.get("status")
    listed = sorted(
        (s, i.raw)
        for (c, s), i in v.book.instruments.items()
        if c == category and symbol in (None, s) and status in (None, i.raw.get("status"))
    )
    cursor = ""
    if category != "spot":
        limit = to_int(q.get("limit"), INSTRUMENTS_PAGE)
        if not 1 <= limit <= 1000:
            raise VenueError(codes.PARAMS_ERROR, "params error: limit must be from 1 to 1000")
        # The cursor names the first symbol of its page: opaque to a client, and it
        # stays right when instruments come and go between pages.
        after = str(q.get("cursor") or "")
        page = [(s, raw) for s, raw in listed if s >= after]
        listed, rest = page[:limit], page[limit:]
        cursor = rest[0][0] if rest else ""
    return {"category": category, "list": [raw for _, raw in listed], "nextPageCursor": cursor}


async def tickers(v: MarketSurface, ctx: Ctx) -> dict[str, Any]:
    category = ctx.category
    if category not in ("spot", "linear"):
        raise VenueError(codes.PARAMS_ERROR, "params error: category invalid")
    wanted = ctx.params.get("symbol")
    rows = []
    for (c, symbol), price in sorted(v.book.prices.items()):
        if c != category or wanted not in (None, symbol):
            continue
        text = num(price)
        bid, ask = _quote(v, category, symbol, price)
        row = {
            "symbol": symbol,
            "bid1Price": num(bid),
            "bid1Size": "1",
            "ask1Price": num(ask),
            "ask1Size": "1",
            "lastPrice": text,
            **_day_fields(v, category, symbol, price),
        }
        if category == "linear":
            # As Bybit's linear rows: ccxt tells a contract ticker from a spot one by
            # the presence of openInterestValue.
            row.update(
                _funding_fields(v, symbol),
                markPrice=text,
                indexPrice=text,
                prevPrice1h=text,
                openInterest="0",
                openInterestValue="0",
                deliveryTime="0",
                basisRate="",
                deliveryFeeRate="",
                predictedDeliveryPrice="",
            )
        rows.append(row)
    if wanted is not None and not rows:
        raise v.book.error("invalid_symbol", category)
    return {"category": category, "list": rows}


def _quote(v: MarketSurface, category: str, symbol: str, price: Decimal) -> tuple[Decimal, Decimal]:
    """The best bid and ask: a tick either side of the price (the price itself when it is
    within two ticks of zero). Market orders still fill at the price (and slippage)."""
    raw = v.book.instruments["spot" if category == "spot" else "linear", symbol].raw
    tick = to_decimal((raw.get("priceFilter") or {}).get("tickSize")) or ZERO
    if not tick.is_finite() or tick <= 0 or price <= 2 * tick:
        return price, price
    return price - tick, price + tick


def _day_fields(v: MarketSurface, category: str, symbol: str, price: Decimal) -> dict[str, str]:
    """The last 24 hours: from the recorded bars when replaying, else none traded."""
    day = v.recorded.day_stats(category, symbol, v.market_ms()) if v.recorded else None
    if day is None:
        text = num(price)
        return {
            "prevPrice24h": text,
            "price24hPcnt": "0",
            "highPrice24h": text,
            "lowPrice24h": text,
            "turnover24h": "0",
            "volume24h": "0",
        }
    change = price / day.prev_price - 1 if day.prev_price else ZERO
    return {
        "prevPrice24h": num(day.prev_price),
        "price24hPcnt": num(change.quantize(Decimal("0.000001"))),
        "highPrice24h": num(max(day.high, price)),
        "lowPrice24h": num(min(day.low, price)),
        "turnover24h": num(day.turnover),
        "volume24h": num(day.volume),
    }


def _funding_fields(v: MarketSurface, symbol: str) -> dict[str, str]:
    interval_min = int(v.book.instruments["linear", symbol].raw.get("fundingInterval", 480))
    every = interval_min * 60_000
    now = v.market_ms()
    rate = v.funding_rates.get(symbol, Decimal("0.0001"))
    next_time = (now // every + 1) * every
    if v.recorded is not None:
        upcoming = v.recorded.next_funding(symbol, v.recorded.clock_ms)
        if upcoming is not None:
            rate, next_time = upcoming.rate, upcoming.time_ms
    return {
        "fundingRate": num(rate),
        "nextFundingTime": str(next_time),
        "fundingIntervalHour": str(interval_min // 60),
        "openInterest": "0",
    }


async def server_time(v: MarketSurface, ctx: Ctx) -> dict[str, Any]:
    # The market's time: the recorded clock when replaying (MarketSurface.market_ms).
    if v.recorded is not None:
        now_ns = v.market_ms() * 1_000_000
    else:
        now_ns = time.time_ns() + v.clock_offset_ms * 1_000_000
    return {"timeSecond": str(now_ns // 1_000_000_000), "timeNano": str(now_ns)}


async def kline(v: MarketSurface, ctx: Ctx) -> dict[str, Any]:
    q = ctx.params
    category, symbol = q.get("category", "linear"), q.get("symbol", "")
    if (category, symbol) not in v.book.instruments or q.get("interval") != "60":
        raise VenueError(codes.PARAMS_ERROR, "Not supported symbols or interval")
    # Bybit includes the bar that contains ``start``.
    start = to_int(q.get("start"), 0) // HOUR_MS * HOUR_MS
    end = to_int(q.get("end"), v.market_ms())
    limit = min(to_int(q.get("limit"), 200), 1000)
    if v.recorded is not None:
        rows = v.recorded.klines(category, symbol, start, end, limit)
    else:
        rows = v.synthetic.klines(category, symbol, start, end, limit)
    return {"category": category, "symbol": symbol, "list": rows}


async def funding_history(v: MarketSurface, ctx: Ctx) -> dict[str, Any]:
    q = ctx.params
    category, symbol = q.get("category", ""), q.get("symbol", "")
    if category not in ("linear", "inverse") or ("linear", symbol) not in v.book.instruments:
        raise VenueError(codes.PARAMS_ERROR, "params error: category or symbol invalid")
    if "startTime" in q and "endTime" not in q:  # as Bybit: startTime alone is refused
        raise VenueError(codes.PARAMS_ERROR, "params error: endTime is required")
    start, end = to_int(q.get("startTime"), 0), to_int(q.get("endTime"), v.market_ms())
    limit = min(to_int(q.get("limit"), 200), 200)
    if v.recorded is not None:
        rows = v.recorded.funding(symbol, start, end, limit)
    else:
        rows = v.synthetic.funding(symbol, start, end, limit)
    return {"category": category, "list": rows}


# -- views of the books ----------------------------------------------------------


def wallet_view(book: Book) -> dict[str, Any]:
    """The UNIFIED wallet as /v5/account/wallet-balance lists it."""
    upl_total = ZERO
    coins = []
    order_im = book.locked.get(SETTLE_COIN, ZERO)
    for coin in sorted(set(book.wallet) | set(book.locked)):
        balance = book.wallet.get(coin, ZERO)
        upl = book.unrealised() if coin == SETTLE_COIN else ZERO
        upl_total += upl
        position_im = book.position_im() if coin == SETTLE_COIN else ZERO
        locked = ZERO if coin == SETTLE_COIN else book.locked.get(coin, ZERO)
        coins.append(
            {
                "coin": coin,
                "walletBalance": num(balance),
                "equity": num(balance + upl),
                "locked": num(locked),
                "totalOrderIM": num(order_im if coin == SETTLE_COIN else ZERO),
                "totalPositionIM": num(position_im),
                "totalPositionMM": num(book.position_mm() if coin == SETTLE_COIN else ZERO),
                "unrealisedPnl": num(upl),
                "cumRealisedPnl": "0",
                "availableToWithdraw": num(book.available(coin)),
                "borrowAmount": "0",
                "accruedInterest": "0",
                "usdValue": "",
                "marginCollateral": True,
                "collateralSwitch": True,
            }
        )
    account = {
        "accountType": "UNIFIED",
        "totalWalletBalance": num(book.wallet.get(SETTLE_COIN, ZERO)),
        "totalEquity": num(book.wallet.get(SETTLE_COIN, ZERO) + upl_total),
        "totalAvailableBalance": num(book.available(SETTLE_COIN)),
        "totalInitialMargin": num(book.position_im() + order_im),
        "totalMaintenanceMargin": num(book.position_mm()),
        "totalMarginBalance": num(book.margin_balance()),
        "accountIMRate": "0",
        "accountMMRate": num(book.mm_rate()),
        "totalPerpUPL": num(upl_total),
        "coin": coins,
    }
    return {"list": [account]}


def positions_view(book: Book, symbol: str | None) -> list[dict[str, Any]]:
    """Perp positions as /v5/position/list lists them (a flat one too when asked by symbol)."""
    if symbol is not None:
        book.instrument("linear", symbol)
        symbols = [symbol]
    else:
        symbols = [s for s, p in book.positions.items() if p.size != 0]
    out = []
    for sym in symbols:
        held = book.positions.get(sym, Position(sym))
        if book.account.mode_of(sym) == "one-way":
            sides = [(0, held)]
        else:  # both sides, each with its own index, a flat one too
            flat = Position(sym)
            sides = [(1, held if held.size > 0 else flat), (2, held if held.size < 0 else flat)]
        out += [_position_entry(book, sym, idx, pos) for idx, pos in sides]
    return out


def _position_entry(book: Book, sym: str, idx: int, pos: Position) -> dict[str, Any]:
    mark = book.prices.get(("linear", sym), pos.avg_price)
    leverage = book.leverage_of(sym)
    return {
        "positionIdx": idx,
        "riskId": 1,
        "symbol": sym,
        "side": "" if pos.size == 0 else ("Buy" if pos.size > 0 else "Sell"),
        "size": num(abs(pos.size)),
        "avgPrice": num(pos.avg_price),
        "positionValue": num(abs(pos.size) * pos.avg_price),
        "tradeMode": 0,
        "autoAddMargin": 0,
        "positionStatus": "Normal",
        "leverage": num(leverage),
        "markPrice": num(mark),
        "liqPrice": "",
        "bustPrice": "",
        "positionIM": num(abs(pos.size) * pos.avg_price / leverage),
        "positionMM": "0",
        "unrealisedPnl": num(book.unrealised(sym) if pos.size else ZERO),
        "cumRealisedPnl": num(pos.realised),
        "createdTime": str(pos.created_ms),
        "updatedTime": str(pos.updated_ms),
        "seq": 0,
        "isReduceOnly": False,
    }
