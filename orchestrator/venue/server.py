"""The loopback Bybit v5 REST venue: an aiohttp server on 127.0.0.1 over the books.

``async with Venue(data_dir=...) as venue:`` starts it on a free port (``venue.url``);
real ``ccxt.async_support.bybit`` talks to it once its URLs point there
(``make_client(venue.url)``). Every request runs through one pipeline: read it,
record an order create in the audit, check the key, signature and receive window,
let the fault rules act, answer as Bybit would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

from aiohttp import web

from orchestrator.venue import auth, codes, endpoints
from orchestrator.venue.account import Account
from orchestrator.venue.admin import add_admin_routes
from orchestrator.venue.audit import Audit, CreateRecord
from orchestrator.venue.checks import COIN, checked_amount, read_body
from orchestrator.venue.client import DEFAULT_API_KEY, DEFAULT_SECRET
from orchestrator.venue.codes import VenueError
from orchestrator.venue.endpoints import Ctx, Handler, to_int
from orchestrator.venue.faults import FaultBook, FaultRule, FaultSpec, malformed
from orchestrator.venue.market import (
    HOUR_MS,
    RecordedMarket,
    SyntheticHistory,
    load_instrument_entries,
)
from orchestrator.venue.records import ZERO, Execution, Fill, Instrument, Order
from orchestrator.venue.state import Book

_PRE = frozenset({"reject", "timeout_before", "drop_before"})
_ALL_KINDS = frozenset(
    {
        "reject",
        "http",
        "timeout_before",
        "timeout_after",
        "drop_before",
        "drop_after",
        "land_late",
        "partial",
        "fill_late",
        "empty",
        "hide_closed",
        "malformed",
        "no_fee_detail",
    }
)
_MARKET_HISTORY = frozenset({"market/kline", "market/funding/history"})
_GATEWAY_PAGE = (
    "<html><head><title>{status}</title></head>"
    "<body><center><h1>{status} {reason}</h1></center></body></html>"
)


def _recorded_market(
    data_dir: Path, instruments: Mapping[str, Mapping[str, Mapping[str, Any]]]
) -> tuple[RecordedMarket, dict[str, dict[str, Mapping[str, Any]]]]:
    """Every pair of ``data_dir`` with a spot and a linear instrument entry and recorded
    candles and funding, on one market clock; and the instruments, each recorded market's
    entry given the data's first hour as its ``launchTime`` when it has none (as Bybit's
    entries have)."""
    spot, linear = instruments.get("spot", {}), instruments.get("linear", {})
    pairs = [
        (symbol, f"{entry['baseCoin']}/{entry['quoteCoin']}")
        for symbol, entry in spot.items()
        if symbol in linear
    ]
    market = RecordedMarket(data_dir, pairs)
    served: dict[str, dict[str, Mapping[str, Any]]] = {
        category: dict(section) for category, section in instruments.items()
    }
    for symbol in market.series:
        first = market.first_open(symbol)
        for category in ("spot", "linear"):
            entry = served[category][symbol]
            if first is not None and not entry.get("launchTime"):
                served[category][symbol] = {**entry, "launchTime": str(first)}
    return market, served


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%MZ")


class Venue:
    """A stateful Bybit v5 venue on 127.0.0.1 for real ccxt (see the module docstring).

    Instruments come from ``instruments`` ({"spot": {id: entry}, "linear": {...}}) or
    the instruments files of ``data_dir``. With ``recorded=True`` prices and funding
    come from the recorded data of ``data_dir`` on a market clock (``advance_to``);
    otherwise set them with ``set_price`` and ``settle_funding``. ``keys`` maps API
    keys to secrets. Times are the wall clock plus ``clock_offset_ms``. With
    ``admin_token`` the admin API answers only requests that carry it.
    """

    def __init__(
        self,
        *,
        data_dir: Path | None = None,
        instruments: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
        keys: Mapping[str, str] | None = None,
        balances: Mapping[str, Decimal] | None = None,
        prices: Mapping[str, Decimal] | None = None,
        spot_fee_rate: Decimal = Decimal("0.001"),
        perp_fee_rate: Decimal = Decimal("0.00055"),
        slippage: Decimal = Decimal(0),
        leverage: Decimal = Decimal(1),
        recorded: bool = False,
        start_ms: int | None = None,
        faults: FaultSpec | None = None,
        port: int = 0,
        order_id_prefix: str = "",
        clock_offset_ms: int = 0,
        admin_token: str | None = None,
        account: Account | None = None,
    ) -> None:
        if instruments is None:
            if data_dir is None:
                raise ValueError("Venue needs instruments or a data_dir holding them")
            instruments = load_instrument_entries(data_dir)
        self.recorded: RecordedMarket | None = None
        if recorded:
            if data_dir is None:
                raise ValueError("recorded=True needs the data_dir to replay")
            self.recorded, instruments = _recorded_market(data_dir, instruments)
        listed = {
            (category, symbol): Instrument.from_entry(category, entry)
            for category, section in instruments.items()
            for symbol, entry in section.items()
        }
        self.book = Book(
            listed,
            spot_fee_rate=spot_fee_rate,
            perp_fee_rate=perp_fee_rate,
            slippage=slippage,
            default_leverage=leverage,
            order_id_prefix=order_id_prefix,
        )
        if account is not None:
            self.book.account = account
        if self.recorded is not None:
            self.book.shown_ms = lambda _: self.market_ms()
        for coin, amount in (balances if balances is not None else {"USDT": 100_000}).items():
            self.set_balance(coin, Decimal(amount))
        if not slippage.is_finite() or not ZERO <= slippage < 1:
            raise ValueError(f"slippage must be a fraction from 0 to below 1, got {slippage}")
        if not leverage.is_finite() or not 1 <= leverage <= 100:
            raise ValueError(f"leverage must be from 1 to 100, got {leverage}")
        for symbol, price in (prices or {}).items():
            self.set_price(symbol, price)
        self.keys = dict(keys if keys is not None else {DEFAULT_API_KEY: DEFAULT_SECRET})
        self.faults = FaultBook()
        if faults is not None:
            self.faults.set(faults)
        self.audit = Audit(self.book)
        self.synthetic = SyntheticHistory()
        self.funding_rates: dict[str, Decimal] = {}  # predicted rates the tickers show
        self.clock_offset_ms = clock_offset_ms
        self.admin_token = admin_token or None  # when set, /admin/* needs it (admin.py)
        self.port = port
        self.url = ""
        # What arrived, for tests: request counts per endpoint, unknown paths,
        # kline/funding queries (faulty ones too), refused signatures.
        self.hits: dict[str, int] = {}
        self.unknown_paths: list[str] = []
        self.market_queries: list[tuple[str, dict[str, str]]] = []
        self.bad_signatures = 0
        self.synthetic.intervals = {
            symbol: int(i.raw.get("fundingInterval") or 480) // 60
            for (category, symbol), i in listed.items()
            if category == "linear"
        }
        if self.recorded is not None:
            # From the data's first hour (its first bars close an hour later) to its end.
            first, last = self.recorded.start_ms - HOUR_MS, self.recorded.end_ms
            if start_ms is not None and not first <= start_ms <= last:
                raise ValueError(
                    f"the market start {_iso(start_ms)} is outside the recorded data "
                    f"({_iso(first)} to {_iso(last)})"
                )
            self.advance_to(start_ms if start_ms is not None else self.recorded.start_ms)
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- life cycle -------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application()
        add_admin_routes(app, self)
        for (method, endpoint), (handler, private) in self._endpoints().items():
            app.router.add_route(method, f"/v5/{endpoint}", self._route(endpoint, handler, private))
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self.url

    async def stop(self) -> None:
        self._closing.set()  # releases answers held back by a fault
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Venue:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- the Python API ---------------------------------------------------------

    def server_ms(self) -> int:
        """The venue's wall clock: signatures and receive windows are checked on it."""
        return time.time_ns() // 1_000_000 + self.clock_offset_ms

    def market_ms(self) -> int:
        """The market's time: the recorded clock when replaying recorded data (so a
        rehearsal can run it faster than the wall clock), else the wall clock. Answers
        carry it as their ``time``, as Bybit's carry its server time."""
        return self.recorded.clock_ms if self.recorded is not None else self.server_ms()

    def set_price(self, symbol: str, price: Decimal | str, category: str | None = None) -> None:
        """The price market orders fill at (before slippage). ``symbol``: "BTCUSDT" or a
        ccxt symbol ("BTC/USDT" is spot, "BTC/USDT:USDT" linear); both categories when
        a venue id names no category."""
        if "/" in symbol:
            category = "linear" if ":" in symbol else "spot"
            symbol = symbol.split(":")[0].replace("/", "")
        self.book.set_price(symbol, checked_amount(Decimal(price), symbol), category)

    def set_balance(self, coin: str, amount: Decimal | str) -> None:
        """Set a wallet balance: a coin name and a finite amount from 0 to MAX_AMOUNT
        (a NaN or negative balance would break the next order's margin check)."""
        if not COIN.fullmatch(coin):
            raise ValueError(f"{coin[:40]!r} is not a coin name (capital letters and digits)")
        self.book.wallet[coin] = checked_amount(Decimal(amount), coin, minimum=ZERO)

    @property
    def orders(self) -> dict[str, Order]:
        self.book.tick(self.server_ms())
        return self.book.orders

    def settle_funding(
        self,
        symbol: str,
        rate: Decimal | str,
        time_ms: int | None = None,
        mark: Decimal | None = None,
    ) -> Execution | None:
        """Settle one funding payment on the ``symbol`` perp position (a Funding execution)."""
        symbol = symbol.split(":")[0].replace("/", "")
        when = self.market_ms() if time_ms is None else time_ms
        return self.book.settle_funding(symbol, Decimal(rate), when, mark)

    def advance_to(self, time_ms: int) -> list[Execution]:
        """Recorded mode: move the market clock to ``time_ms``, settling the recorded
        funding due on the way (each at the perp's price then), then set the prices."""
        market = self._recorded()
        if time_ms < market.clock_ms:
            raise ValueError("the market clock only moves forward")
        settled = []
        for when, market_id, funding in market.fundings_between(market.clock_ms, time_ms):
            held = self.book.positions.get(market_id)
            if held is None or held.size == 0:
                continue  # nothing to settle (and the prices of every pair are set below)
            mark = market.prices_at(when).get(("linear", market_id))
            self.book.prices.update(market.prices_at(when))
            execution = self.book.settle_funding(market_id, funding.rate, when, mark)
            if execution is not None:
                settled.append(execution)
        market.clock_ms = time_ms
        self.book.prices.update(market.prices_at(time_ms))
        return settled

    def _recorded(self) -> RecordedMarket:
        if self.recorded is None:
            raise ValueError("the venue does not replay recorded data (recorded=False)")
        return self.recorded

    async def run_clock(self, speed: float, interval_s: float = 0.25) -> None:
        """Recorded mode: move the market clock ``speed`` times as fast as the wall clock."""
        market = self._recorded()
        last = time.monotonic()
        while market.clock_ms < market.end_ms:
            await asyncio.sleep(interval_s)
            now = time.monotonic()
            step = int((now - last) * 1000 * speed)
            last = now
            self.advance_to(min(market.clock_ms + step, market.end_ms))

    # -- the pipeline -----------------------------------------------------------

    def routes(self) -> list[tuple[str, str, bool]]:
        """Every Bybit v5 route it serves: (method, path, whether it must be signed)."""
        return [(m, f"/v5/{e}", signed) for (m, e), (_, signed) in self._endpoints().items()]

    def _endpoints(self) -> dict[tuple[str, str], tuple[Handler, bool]]:
        return {
            ("GET", "market/instruments-info"): (partial(endpoints.instruments, self), False),
            ("GET", "market/tickers"): (partial(endpoints.tickers, self), False),
            ("GET", "market/kline"): (partial(endpoints.kline, self), False),
            ("GET", "market/funding/history"): (partial(endpoints.funding_history, self), False),
            ("GET", "market/time"): (partial(endpoints.server_time, self), False),
            ("POST", "order/create"): (self._create, True),
            ("POST", "order/cancel"): (self._cancel, True),
            ("GET", "order/realtime"): (self._realtime, True),
            ("GET", "order/history"): (self._history, True),
            ("GET", "account/wallet-balance"): (partial(endpoints.wallet, self), True),
            ("GET", "position/list"): (partial(endpoints.positions, self), True),
            ("POST", "position/set-leverage"): (partial(endpoints.set_leverage, self), True),
            ("GET", "execution/list"): (partial(endpoints.executions, self), True),
            ("POST", "position/switch-mode"): (partial(endpoints.switch_mode, self), True),
            ("GET", "account/info"): (partial(endpoints.account_info, self), True),
            ("GET", "account/fee-rate"): (partial(endpoints.fee_rate, self), True),
            ("GET", "user/query-api"): (partial(endpoints.api_key, self), True),
        }

    def _route(
        self, endpoint: str, handler: Handler, private: bool
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def serve(request: web.Request) -> web.StreamResponse:
            return await self._serve(request, endpoint, handler, private)

        return serve

    async def _serve(
        self, request: web.Request, endpoint: str, handler: Handler, private: bool
    ) -> web.StreamResponse:
        arrival_ns, arrival_perf_ns = time.time_ns(), time.perf_counter_ns()
        self.hits[endpoint] = self.hits.get(endpoint, 0) + 1
        if request.method == "POST":
            payload, params, problem = read_body(await request.read())
            if params is None:
                if endpoint == "order/create":  # still a create that arrived
                    record = self.audit.record({}, arrival_ns, arrival_perf_ns)
                    self.audit.refuse(record, "rejected", codes.PARAMS_ERROR)
                return self._reply({}, codes.PARAMS_ERROR, f"params error: {problem}")
        else:
            payload = request.rel_url.raw_query_string
            params = dict(request.query)
        ctx = Ctx(request, endpoint, params)
        if endpoint == "order/create":
            ctx.record = self.audit.record(params, arrival_ns, arrival_perf_ns)
        if endpoint in _MARKET_HISTORY:
            self.market_queries.append((request.path, dict(request.query)))
        try:
            if private:
                self._authenticate(ctx, payload)
            link_id = params.get("orderLinkId")
            ctx.rule = self.faults.match(
                endpoint, ctx.category, str(link_id) if link_id else None, _ALL_KINDS
            )
            if ctx.rule is not None and self._before(ctx, ctx.rule):
                return await self._fault_before(ctx, ctx.rule)
            self.book.tick(self.server_ms())
            result = await handler(ctx)
        except VenueError as exc:
            if ctx.record is not None and ctx.record.outcome == "received":
                ctx.record.outcome, ctx.record.ret_code = "rejected", exc.code
            return self._reply({}, exc.code, exc.message)
        envelope = self._envelope(result)
        if ctx.rule is not None:
            return await self._fault_after(ctx, ctx.rule, envelope)
        return self._json(envelope)

    def _authenticate(self, ctx: Ctx, payload: str) -> None:
        try:
            ctx.signed_ms, ctx.recv_window = auth.check(
                ctx.request.headers, payload, self.keys, self.server_ms()
            )
        except VenueError as exc:
            if exc.code == codes.INVALID_SIGN:
                self.bad_signatures += 1
            if ctx.record is not None:
                self.audit.refuse(ctx.record, "auth", exc.code)
            raise
        if ctx.record is not None:
            ctx.record.signed_ms, ctx.record.recv_window = ctx.signed_ms, ctx.recv_window

    @staticmethod
    def _before(ctx: Ctx, rule: FaultRule) -> bool:
        """Whether the fault answers in place of the request (nothing happens)."""
        if rule.kind in _PRE:
            return True
        if rule.kind in ("http", "malformed"):  # before, or after doing the request
            return not rule.places
        return False

    async def _fault_before(self, ctx: Ctx, rule: FaultRule) -> web.StreamResponse:
        self._note(ctx, "rejected" if rule.kind == "reject" else "dropped", rule)
        if rule.kind == "reject":
            exc = (
                self.book.error(rule.error, ctx.category)
                if rule.error is not None
                else VenueError(rule.ret_code or codes.SYSTEM_ERROR, rule.ret_msg)
            )
            if ctx.record is not None:
                ctx.record.ret_code = exc.code
            return self._reply({}, exc.code, exc.message)
        if rule.kind == "timeout_before":
            await self._hold(rule.delay_ms)
            exc = self.book.error("request_timeout", ctx.category)
            return self._reply({}, exc.code, exc.message)
        if rule.kind == "drop_before":
            return self._drop(ctx)
        if rule.kind == "http":
            return self._http(rule.status)
        exc = self.book.error("system_error", ctx.category)  # malformed, with nothing placed
        envelope = {"retCode": exc.code, "retMsg": exc.message, "result": {}, "retExtInfo": {}}
        return self._mangled(envelope, rule.body)

    async def _fault_after(
        self, ctx: Ctx, rule: FaultRule, envelope: dict[str, Any]
    ) -> web.StreamResponse:
        if ctx.record is not None and ctx.record.fault is None:
            ctx.record.fault = rule.kind
        if rule.kind == "timeout_after":
            await self._hold(rule.delay_ms)
        elif rule.kind == "drop_after":
            return self._drop(ctx)
        elif rule.kind == "http":
            return self._http(rule.status)
        elif rule.kind == "malformed":
            return self._mangled(envelope, rule.body)
        return self._json(envelope)

    @staticmethod
    def _note(ctx: Ctx, outcome: str, rule: FaultRule) -> None:
        if ctx.record is not None:
            ctx.record.outcome, ctx.record.fault = outcome, rule.kind

    async def _hold(self, delay_ms: int) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), delay_ms / 1000)

    @staticmethod
    def _drop(ctx: Ctx) -> web.StreamResponse:
        transport = ctx.request.transport
        if transport is not None:
            transport.abort()
        return web.Response()

    @staticmethod
    def _http(status: int) -> web.Response:
        reason = web.Response(status=status).reason or "Error"
        page = _GATEWAY_PAGE.format(status=status, reason=reason)
        return web.Response(status=status, text=page, content_type="text/html")

    @staticmethod
    def _mangled(envelope: dict[str, Any], how: str) -> web.Response:
        status, content_type, text = malformed(envelope, how)
        return web.Response(status=status, body=text.encode(), content_type=content_type)

    def _envelope(self, result: dict[str, Any], code: int = 0, msg: str = "OK") -> dict[str, Any]:
        return {
            "retCode": code,
            "retMsg": msg,
            "result": result,
            "retExtInfo": {},
            "time": self.market_ms(),
        }

    @staticmethod
    def _json(body: dict[str, Any]) -> web.Response:
        # Compact, as Bybit sends it; ccxt puts this text into its exception messages.
        text = json.dumps(body, separators=(",", ":"))
        return web.Response(text=text, content_type="application/json")

    def _reply(self, result: dict[str, Any], code: int = 0, msg: str = "OK") -> web.Response:
        return self._json(self._envelope(result, code, msg))

    async def _unknown(self, request: web.Request) -> web.Response:
        self.unknown_paths.append(f"{request.method} {request.path}")
        return self._reply({}, codes.PARAMS_ERROR, f"loopback venue does not serve {request.path}")

    # -- orders -----------------------------------------------------------------

    async def _create(self, ctx: Ctx) -> dict[str, Any]:
        order = self.book.check_create(ctx.params)
        rule, record = ctx.rule, ctx.record
        assert record is not None
        fill = Fill()
        if rule is not None and rule.kind == "land_late":
            self._note(ctx, "pending", rule)
            self._spawn(self._land_late(order, rule, record, ctx.signed_ms + ctx.recv_window))
            if rule.reply == "drop":
                transport = ctx.request.transport
                if transport is not None:
                    transport.abort()
                raise self.book.error("system_error", order.category)  # never reaches the client
            if rule.reply == "timeout":
                await self._hold(rule.delay_ms)
                raise self.book.error("request_timeout", order.category)
            raise self.book.error("system_error", order.category)
        if rule is not None and rule.kind == "partial":
            fill = Fill(rule.fill_ratio, rule.fill_qty, rule.hold_reads, rule.hold_ms)
        elif rule is not None and rule.kind == "fill_late":
            fill = Fill(Decimal(1), None, rule.hold_reads, rule.hold_ms)
        placed = self.book.place(order, fill, self.server_ms())
        record.outcome, record.order_id = "placed", placed.order_id
        return {"orderId": placed.order_id, "orderLinkId": placed.link_id}

    async def _land_late(
        self, order: Order, rule: FaultRule, record: CreateRecord, deadline_ms: int
    ) -> None:
        await asyncio.sleep(rule.delay_ms / 1000)
        now = self.server_ms()
        if now > deadline_ms and not rule.ignore_recv_window:
            record.outcome = "expired"  # Bybit refuses what arrives after its recv window
            return
        try:
            placed = self.book.place(order, Fill(), now)
        except VenueError as exc:
            record.outcome, record.ret_code = "rejected", exc.code
            return
        record.outcome, record.order_id = "placed", placed.order_id

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _cancel(self, ctx: Ctx) -> dict[str, Any]:
        p = ctx.params
        category = str(p.get("category", ""))
        if category == "spot":
            self.book.account.may("Spot", "SpotTrade")
        else:
            self.book.account.may("ContractTrade", "Order")
        order = self.book.cancel(
            category, p.get("orderId") or None, p.get("orderLinkId") or None, self.server_ms()
        )
        return {"orderId": order.order_id, "orderLinkId": order.link_id}

    async def _realtime(self, ctx: Ctx) -> dict[str, Any]:
        return self._orders(ctx, history=False)

    async def _history(self, ctx: Ctx) -> dict[str, Any]:
        return self._orders(ctx, history=True)

    def _orders(self, ctx: Ctx, *, history: bool) -> dict[str, Any]:
        q = ctx.params
        category = ctx.category
        if category not in ("spot", "linear"):
            raise VenueError(codes.PARAMS_ERROR, "params error: category invalid")
        rule = ctx.rule
        if rule is not None and rule.kind == "empty":
            return {"category": category, "list": [], "nextPageCursor": ""}
        by_id = "orderId" in q or "orderLinkId" in q
        hide_closed = rule is not None and rule.kind == "hide_closed"
        now = self.server_ms()
        found = []
        if by_id:  # at most one: look it up rather than scan
            one = self.book.find(category, order_id=q.get("orderId"), link_id=q.get("orderLinkId"))
            candidates = [one] if one is not None else []
        else:
            candidates = list(reversed(self.book.orders.values()))  # newest first, as Bybit
        for order in candidates:
            if (
                order.category != category
                or q.get("symbol", order.symbol) != order.symbol
                or q.get("orderId", order.order_id) != order.order_id
                or q.get("orderLinkId", order.link_id) != order.link_id
                or q.get("orderStatus", order.status) != order.status
            ):
                continue
            shown = order.is_open or (by_id and not hide_closed)
            if (not order.is_open) if history else shown:
                found.append(self.book.read(order, now))
        if rule is not None and rule.kind == "no_fee_detail":
            for entry in found:  # as Bybit answered before it added the field
                entry.pop("cumFeeDetail", None)
        limit = to_int(q.get("limit"), 20)
        return {"category": category, "list": found[:limit], "nextPageCursor": ""}
