"""A small stateful fake of Bybit's v5 REST API on loopback, for driving real ccxt in tests.

It serves the recorded instruments-info entries, verifies every private request's
HMAC-SHA256 signature, fills market orders at once at ``price`` and can be told to
misbehave: answer the next create with a retCode error, place the order and then
answer too late or drop the connection, fill only part of it, report it as still
open for a while, fail order reads with HTTP 503, or forget closed orders in
/v5/order/realtime as after a restart.

It also serves public market data generated from the time alone (so a test can
compute what it should receive): hourly klines and funding-rate history, newest
first as Bybit sends them, with their own faults (HTTP 503, a retCode error, or
every read failing after a number of pages).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Self

import ccxt.async_support as ccxt_async
from aiohttp import web

from tests.support import data_file

INSTRUMENTS = data_file("bybit_instruments_info_BTC_ETH_ccxt_static_subset.json")
API_KEY = "test-key"
SECRET = "test-secret"
HOUR_MS = 3_600_000
# Bybit answers an unknown or already finished order with a different code per category.
ORDER_NOT_FOUND = {
    "spot": (170213, "Order does not exist."),
    "linear": (110001, "order not exists"),
}


def _ms() -> int:
    return int(time.time() * 1000)


def _seed(symbol: str) -> int:
    return sum(map(ord, symbol))


def kline_entry(category: str, symbol: str, start_ms: int) -> list[str]:
    """The v5 kline entry of the hour opening at ``start_ms``: [start, o, h, l, c, vol, turnover].

    Text a float cannot carry (trailing zeros, 17 significant digits) proves a client
    writes what the venue said.
    """
    hour = start_ms // HOUR_MS
    base = Decimal(_seed(symbol) * 80) + (Decimal("1.5") if category == "linear" else 0)

    def price(step: int) -> Decimal:
        return base + Decimal((step * 7919) % 2000 - 1000).scaleb(-1)

    cent = Decimal("0.01")
    open_, close = price(hour).quantize(cent), price(hour + 1).quantize(cent)
    high = (max(open_, close) + Decimal(hour % 13).scaleb(-1)).quantize(cent)
    low = (min(open_, close) - Decimal(hour % 7).scaleb(-1)).quantize(cent)
    volume = Decimal(hour % 5000 + 1).scaleb(-3)
    turnover = (volume * close + Decimal(hour % 97).scaleb(-8)).quantize(Decimal("1E-8"))
    return [str(start_ms), *(format(v, "f") for v in (open_, high, low, close, volume, turnover))]


def funding_rate(symbol: str, timestamp_ms: int) -> str:
    """The funding rate settled at ``timestamp_ms``, as Bybit writes it (-0.0003 ... 0.001)."""
    step = timestamp_ms // HOUR_MS + _seed(symbol)
    return format(Decimal((step * 7919) % 130000 - 30000).scaleb(-8).normalize(), "f")


@dataclass
class FakeOrder:
    """One order as the venue holds it; ``raw`` is its v5 order-list entry once filled."""

    category: str
    raw: dict[str, Any]
    open_fetches: int  # how many more fetches report it as New before it fills
    cancelled: bool = False
    reads: int = 0  # how often a fetch returned it

    def view(self) -> dict[str, Any]:
        if self.cancelled or self.open_fetches > 0:
            qty = self.raw["qty"]
            status = "Cancelled" if self.cancelled else "New"
            return {
                **self.raw,
                "orderStatus": status,
                "cumExecQty": "0",
                "cumExecValue": "0",
                "cumExecFee": "0",
                "cumFeeDetail": {},
                "avgPrice": "",
                "leavesQty": "0" if self.cancelled else qty,
            }
        return dict(self.raw)

    @property
    def is_open(self) -> bool:
        return not self.cancelled and self.open_fetches > 0


@dataclass
class FakeBybit:
    """Start with ``async with FakeBybit() as fake:``; ``fake.url`` is its base URL."""

    price: Decimal = Decimal("60000")
    spot_fee_rate: Decimal = Decimal("0.001")  # spot buys pay it in the base coin
    perp_fee_rate: Decimal = Decimal("0.00055")
    # Fault knobs, each consumed by the next order create.
    create_error: tuple[int, str] | None = None
    reply_delay: float | None = None  # seconds to hold the reply after placing the order
    drop_connection: bool = False  # place the order, then close the socket without a reply
    open_fetches: int = 0  # the next order reads as New this many times before it fills
    fill_qty: Decimal | None = None  # the next order fills only this much, the rest is cancelled
    # Simulates a venue restart: closed orders are then only visible in /v5/order/history.
    realtime_forgets_closed: bool = False
    failing_reads: int = 0  # the next this many order reads answer HTTP 503

    # Public market data: hourly bars from ``history_start`` for ``history_hours`` hours
    # (none by default), and a funding settlement every ``funding_hours`` within them.
    history_start: int = 1_704_067_200_000  # 2024-01-01T00:00:00Z
    history_hours: int = 0
    funding_hours: int = 8
    failing_market_reads: int = 0  # the next this many kline/funding reads answer HTTP 503
    market_error: tuple[int, str] | None = None  # the next kline/funding read answers this
    # After this many more kline/funding reads, every one answers retCode 10016 (the venue
    # is gone for good, until the test sets it back to None).
    market_reads_left: int | None = None

    orders: dict[str, FakeOrder] = field(default_factory=dict)
    create_bodies: list[dict[str, Any]] = field(default_factory=list)
    unknown_paths: list[str] = field(default_factory=list)
    # Every kline/funding request as (path, query), faulty ones included.
    market_queries: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    bad_signatures: int = 0
    url: str = ""
    _runner: web.AppRunner | None = None
    _closing: asyncio.Event = field(default_factory=asyncio.Event)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_get("/v5/market/instruments-info", self._instruments)
        app.router.add_post("/v5/order/create", self._create)
        app.router.add_post("/v5/order/cancel", self._cancel)
        app.router.add_get("/v5/order/realtime", self._realtime)
        app.router.add_get("/v5/order/history", self._history)
        app.router.add_get("/v5/market/kline", self._kline)
        app.router.add_get("/v5/market/funding/history", self._funding_history)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closing.set()  # releases replies held back by ``reply_delay``
        if self._runner is not None:
            await self._runner.cleanup()

    # -- helpers ---------------------------------------------------------------

    @staticmethod
    def _reply(result: dict[str, Any], code: int = 0, msg: str = "OK") -> web.Response:
        body = {"retCode": code, "retMsg": msg, "result": result, "retExtInfo": {}, "time": _ms()}
        # Compact, as Bybit sends it; ccxt puts this text into its exception messages.
        return web.Response(
            text=json.dumps(body, separators=(",", ":")), content_type="application/json"
        )

    def _auth_error(self, request: web.Request, payload: str) -> web.Response | None:
        """Bybit's check: hex HMAC-SHA256 of timestamp + key + recv window + query or body."""
        headers = request.headers
        if headers.get("X-BAPI-API-KEY") != API_KEY:
            return self._reply({}, 10003, "API key is invalid.")
        origin = (
            headers.get("X-BAPI-TIMESTAMP", "")
            + API_KEY
            + headers.get("X-BAPI-RECV-WINDOW", "")
            + payload
        )
        expected = hmac.new(SECRET.encode(), origin.encode(), hashlib.sha256).hexdigest()
        if hmac.compare_digest(expected, headers.get("X-BAPI-SIGN", "")):
            return None
        self.bad_signatures += 1
        # Like the real venue, echo the signed text, API key included.
        return self._reply({}, 10004, f"error sign! origin_string[{origin}]")

    def _matching(self, query: Any, *, history: bool) -> list[dict[str, Any]]:
        found = []
        for order_id, order in self.orders.items():
            raw = order.raw
            if (
                order.category != query.get("category")
                or query.get("symbol", raw["symbol"]) != raw["symbol"]
                or query.get("orderId", order_id) != order_id
                or query.get("orderLinkId", raw["orderLinkId"]) != raw["orderLinkId"]
            ):
                continue
            by_id = "orderId" in query or "orderLinkId" in query
            if history:
                visible = not order.is_open
            elif order.is_open:
                visible = True
            else:
                visible = by_id and not self.realtime_forgets_closed
            if visible:
                found.append(order.view())
                order.reads += 1
                if order.open_fetches > 0:
                    order.open_fetches -= 1
        return found

    # -- endpoints -------------------------------------------------------------

    async def _instruments(self, request: web.Request) -> web.Response:
        category = request.query.get("category", "")
        entries = json.loads(INSTRUMENTS.read_text())
        # ccxt asks for pre-launch linear markets separately; answering them would duplicate.
        listed = {} if request.query.get("status") == "PreLaunch" else entries.get(category, {})
        return self._reply({"category": category, "list": list(listed.values())})

    async def _create(self, request: web.Request) -> web.StreamResponse:
        text = await request.text()
        if (error := self._auth_error(request, text)) is not None:
            return error
        body = json.loads(text)
        self.create_bodies.append(body)
        if self.create_error is not None:
            code, msg = self.create_error
            self.create_error = None
            return self._reply({}, code, msg)
        link_id = body.get("orderLinkId", "")
        if link_id and any(o.raw["orderLinkId"] == link_id for o in self.orders.values()):
            return self._reply({}, 110072, "OrderLinkedID is duplicate")
        order_id = f"fake-{next(self._ids)}"
        self.orders[order_id] = self._fill(order_id, body)
        self.open_fetches, self.fill_qty = 0, None
        if self.drop_connection:
            self.drop_connection = False
            assert request.transport is not None
            request.transport.abort()
            return web.Response()
        if self.reply_delay is not None:
            delay, self.reply_delay = self.reply_delay, None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), delay)
        return self._reply({"orderId": order_id, "orderLinkId": link_id})

    def _fill(self, order_id: str, body: dict[str, Any]) -> FakeOrder:
        category = body["category"]
        side = body["side"]
        qty = Decimal(body["qty"])
        filled = qty if self.fill_qty is None else self.fill_qty
        if filled == qty:
            status = "Filled"
        else:  # a market order is IOC: what did not fill is cancelled
            status = "PartiallyFilledCanceled" if filled > 0 else "Cancelled"
        value = filled * self.price
        if category == "spot" and side == "Buy":
            base = body["symbol"].removesuffix("USDT")
            fee_coin, fee = base, filled * self.spot_fee_rate
        else:
            fee_coin = "USDT"
            fee = value * (self.spot_fee_rate if category == "spot" else self.perp_fee_rate)
        now = str(_ms())
        raw: dict[str, Any] = {
            "orderId": order_id,
            "orderLinkId": body.get("orderLinkId", ""),
            "symbol": body["symbol"],
            "side": side,
            "orderType": body["orderType"],
            "orderStatus": status,
            "price": "0",
            "qty": body["qty"],
            "cumExecQty": str(filled),
            "cumExecValue": str(value),
            "avgPrice": str(self.price) if filled else "",
            "cumExecFee": str(fee),
            "cumFeeDetail": {fee_coin: str(fee)} if filled else {},
            "leavesQty": "0",
            "timeInForce": "IOC",
            "reduceOnly": bool(body.get("reduceOnly", False)),
            "createdTime": now,
            "updatedTime": now,
        }
        if category == "spot":
            raw["marketUnit"] = body.get("marketUnit", "")
        else:
            raw["tpslMode"] = ""  # ccxt tells contract orders from spot ones by this key
        return FakeOrder(category=category, raw=raw, open_fetches=self.open_fetches)

    async def _cancel(self, request: web.Request) -> web.Response:
        text = await request.text()
        if (error := self._auth_error(request, text)) is not None:
            return error
        body = json.loads(text)
        for order_id, order in self.orders.items():
            if (
                order.category == body["category"]
                and order.is_open
                and (
                    body.get("orderId") == order_id
                    or body.get("orderLinkId") == order.raw["orderLinkId"]
                )
            ):
                order.cancelled = True
                return self._reply({"orderId": order_id, "orderLinkId": order.raw["orderLinkId"]})
        code, msg = ORDER_NOT_FOUND[body["category"]]
        return self._reply({}, code, msg)

    async def _realtime(self, request: web.Request) -> web.Response:
        return self._orders(request, history=False)

    async def _history(self, request: web.Request) -> web.Response:
        return self._orders(request, history=True)

    def _orders(self, request: web.Request, *, history: bool) -> web.Response:
        if (error := self._auth_error(request, request.rel_url.raw_query_string)) is not None:
            return error
        if self.failing_reads > 0:
            self.failing_reads -= 1
            return web.Response(status=503, text="Service Unavailable")
        found = self._matching(request.query, history=history)
        return self._reply({"category": request.query.get("category"), "list": found})

    def _market_fault(self, request: web.Request) -> web.Response | None:
        self.market_queries.append((request.path, dict(request.query)))
        if self.market_reads_left is not None:
            if self.market_reads_left == 0:
                return self._reply({}, 10016, "System error")
            self.market_reads_left -= 1
        if self.failing_market_reads > 0:
            self.failing_market_reads -= 1
            return web.Response(status=503, text="Service Unavailable")
        if self.market_error is not None:
            code, msg = self.market_error
            self.market_error = None
            return self._reply({}, code, msg)
        return None

    def _listed(self, category: str, symbol: str) -> bool:
        return symbol in json.loads(INSTRUMENTS.read_text()).get(category, {})

    @staticmethod
    def _newest_first(times: list[int], start: int, end: int, limit: int) -> list[int]:
        """Bybit's answer to a window holding more than ``limit`` rows: only the newest."""
        return sorted((t for t in times if start <= t <= end), reverse=True)[:limit]

    async def _kline(self, request: web.Request) -> web.Response:
        if (error := self._market_fault(request)) is not None:
            return error
        query = request.query
        category, symbol = query.get("category", "linear"), query.get("symbol", "")
        if not self._listed(category, symbol) or query.get("interval") != "60":
            return self._reply({}, 10001, "Not supported symbols or interval")
        bars = [self.history_start + i * HOUR_MS for i in range(self.history_hours)]
        # Bybit includes the bar that contains ``start``.
        start = int(query.get("start", 0)) // HOUR_MS * HOUR_MS
        end = int(query.get("end", _ms()))
        limit = min(int(query.get("limit", 200)), 1000)
        rows = [
            kline_entry(category, symbol, t) for t in self._newest_first(bars, start, end, limit)
        ]
        return self._reply({"category": category, "symbol": symbol, "list": rows})

    async def _funding_history(self, request: web.Request) -> web.Response:
        if (error := self._market_fault(request)) is not None:
            return error
        query = request.query
        category, symbol = query.get("category", ""), query.get("symbol", "")
        if category not in ("linear", "inverse") or not self._listed(category, symbol):
            return self._reply({}, 10001, "params error: category or symbol invalid")
        if "startTime" in query and "endTime" not in query:  # as Bybit: startTime alone is refused
            return self._reply({}, 10001, "params error: endTime is required")
        every = self.funding_hours * HOUR_MS
        times = range(self.history_start, self.history_start + self.history_hours * HOUR_MS, every)
        start, end = int(query.get("startTime", 0)), int(query.get("endTime", _ms()))
        limit = min(int(query.get("limit", 200)), 200)
        rows = [
            {
                "symbol": symbol,
                "fundingRate": funding_rate(symbol, t),
                "fundingRateTimestamp": str(t),
            }
            for t in self._newest_first(list(times), start, end, limit)
        ]
        return self._reply({"category": category, "list": rows})

    async def _unknown(self, request: web.Request) -> web.Response:
        self.unknown_paths.append(f"{request.method} {request.path}")
        return self._reply({}, 10001, f"fake bybit does not serve {request.path}")


def make_exchange(url: str, *, timeout_ms: int = 2000, secret: str = SECRET) -> Any:
    """A real ``ccxt.async_support.bybit`` that can only reach ``url``."""
    api = {name: url for name in ("spot", "futures", "v2", "public", "private")}
    return ccxt_async.bybit(
        {
            "apiKey": API_KEY,
            "secret": secret,
            "timeout": timeout_ms,
            # ccxt's throttle (100 ms per private call) and its 250 ms pause on close, for
            # TLS shutdown, only slow a loopback test down.
            "enableRateLimit": False,
            "timeout_on_exit": 0,
            # Every REST base, sandbox and demo included, so no mode can reach the internet.
            "urls": {"api": api, "test": api, "demotrading": api},
            "has": {"fetchCurrencies": False},  # else load_markets asks /v5/asset/coin/query-info
            "options": {
                "fetchMarkets": {"types": ["spot", "linear"]},
                "adjustForTimeDifference": False,
                # Declares a unified account so ccxt does not probe for it.
                "enableUnifiedAccount": True,
                "enableUnifiedMargin": False,
                "unifiedMarginStatus": 6,
            },
        }
    )
