"""Live orders on Bybit through a ccxt async client, mapped onto the Executor contract."""

from __future__ import annotations

import decimal
import re
from collections.abc import Awaitable, Callable, Collection, Sequence
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar

import anyio
import ccxt
import msgspec

from orchestrator.bybit.client import order_id_problem, scrub
from orchestrator.bybit.retry import retry_network_errors
from orchestrator.exceptions import (
    InsufficientFundsError,
    InvalidOrderError,
    OrchestratorError,
    OrderOutcomeUnknown,
    OrderRejected,
)
from orchestrator.execution.base import Executor
from orchestrator.execution.limits import RateLimiter
from orchestrator.models import (
    OUTSIDE_KINDS,
    ZERO,
    Category,
    Holdings,
    Instrument,
    OrderRequest,
    OrderResult,
    OrderStatus,
    OrderType,
    Side,
)
from orchestrator.settings import VenueTiming

T = TypeVar("T")
SHORT_SIDE = 2  # hedge mode's positionIdx of the short side

# ccxt's unified statuses of an order that is done (Bybit's Filled, PartiallyFilledCanceled,
# Cancelled, Deactivated, Rejected), and of one that may still fill. ccxt passes a
# status word it does not know through as it came: such an order is unusable.
_DONE = frozenset({"closed", "canceled", "expired", "rejected"})
_STATUSES = _DONE | {"open"}
# What ccxt's own parsing raises on an answer it cannot read (a number that is a word,
# a list where it expects an object...): not ccxt errors, but they mean the same.
_PARSE_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    ArithmeticError,  # decimal.InvalidOperation among them
)
# Bybit retCodes ccxt maps to classes that hide what they mean for us: a duplicate
# orderLinkId (an earlier attempt was accepted) is a plain InvalidOrder, and "System
# error" is a plain ExchangeError although the order may be live.
_DUPLICATE_CLIENT_ID = frozenset({"110072", "170141"})
_SYSTEM_ERROR = "10016"
# ccxt's exception message carries Bybit's JSON body: 'bybit {"retCode":110007,...}'.
_RET_CODE = re.compile(r'"retCode"\s*:\s*"?(\d+)')


class _Unusable(Exception):
    """The venue's answer was read, but what it says cannot be used (an order without an
    id, a number that is NaN, a status word Bybit never sends...)."""


# An answer that was read but cannot be used, or that ccxt could not parse.
_UNREADABLE: tuple[type[Exception], ...] = (_Unusable, *_PARSE_ERRORS)


def _number(value: Any, name: str, *texts: Any) -> Decimal | None:
    """ccxt's number as a Decimal. None stays None; anything but a finite number is
    unusable.

    ccxt hands out floats, and a float keeps only 15 to 17 significant digits: a fee
    of 19.95556475317653 USDT comes back 1e-15 off, and the ledger no longer adds up
    to the wallet the venue keeps. ``texts`` are the venue's own strings for the same
    figure (the order's ``info``): the first that reads as this very float is the
    exact value ccxt rounded, and is used instead. ccxt still decides what the figure
    is; the text only restores the digits its float dropped."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise _Unusable(f"{name} {value!r} is not a number")
    try:
        number = Decimal(str(value))
    except decimal.InvalidOperation:
        raise _Unusable(f"{name} {value!r} is not a number") from None
    if not number.is_finite():
        raise _Unusable(f"{name} {value!r} is not a number")
    for text in texts:
        exact = _text_number(text)
        if exact is not None and float(exact) == float(number):
            return exact
    return number


def _text_number(text: Any) -> Decimal | None:
    """A decimal string of the venue's answer, or None when it is not one."""
    if not isinstance(text, str) or not text:
        return None
    try:
        number = Decimal(text)
    except decimal.InvalidOperation:
        return None
    return number if number.is_finite() else None


def _ret_code(exc: Exception) -> str | None:
    match = _RET_CODE.search(str(exc))
    return match.group(1) if match else None


def _may_have_happened(exc: Exception) -> bool:
    """Whether a ccxt error leaves open that the request was carried out: a network
    error or an answer that could not be read (``ccxt.OperationFailed``), Bybit's
    "System error" (10016), or ccxt's catch-all ``ExchangeError`` naming no refusal
    (no retCode, or retCode 0: an answer ccxt could not read, or a broken transfer)."""
    if isinstance(exc, ccxt.OperationFailed):
        return True
    code = _ret_code(exc)
    return code == _SYSTEM_ERROR or (type(exc) is ccxt.ExchangeError and code in (None, "0"))


def _category(market: Any) -> Category | None:
    if market["spot"]:
        return Category.SPOT
    if market["swap"] and market["linear"]:
        return Category.LINEAR
    return None


class LiveExecutor(Executor):
    """Sends market orders to Bybit through ``exchange``, a ``ccxt.async_support.bybit``.

    The caller builds the exchange (keys from the environment), leaves its
    ``maxRetriesOnFailure`` at 0, and closes it. Order creation is never retried:
    an ambiguous failure raises ``OrderOutcomeUnknown`` and the order is then found
    by its client order id. Reads retry network errors ``read_attempts`` times.
    A filled market order usually reads as done at once; one that still reads as
    open is polled ``fill_poll_attempts`` more times, ``fill_poll_interval`` seconds
    apart, and returned as OPEN if it never finishes.

    ``timing`` is the one place the venue's deadlines come from: the exchange must be
    built with the same (``orchestrator.bybit.client.make_exchange`` does); an
    order whose answer was lost may land until ``timing.late_arrival_seconds``
    after it was signed. Requests are paced by ``limiter`` (Bybit's per-endpoint,
    per-category budgets), not by ccxt's throttle, so the two legs leave together.

    An answer that cannot be read is never "rejected" and never "not found": a create
    or cancel raises ``OrderOutcomeUnknown``, and so does a lookup or a holdings read
    (ask again). ``make_exchange``'s client checks every answer's envelope before
    ccxt reads it (a broken list answer would otherwise read as empty); here, what
    ccxt made of it is checked again: an order without a usable id, a number that is
    not one, a status or side ccxt does not know, an entry that is not the order
    asked for, or ccxt's own parsing failing (ValueError...) are all unusable.
    """

    def __init__(
        self,
        exchange: Any,
        *,
        timing: VenueTiming | None = None,
        limiter: RateLimiter | None = None,
        fill_poll_interval: float = 0.2,
        fill_poll_attempts: int = 5,
        read_attempts: int = 3,
        hedged: Collection[str] = (),
    ) -> None:
        self._exchange = exchange
        self._hedged = frozenset(hedged)  # perp symbols in hedge mode
        self._timing = timing or VenueTiming()
        self._limits = limiter or RateLimiter()
        self.late_arrival_seconds = self._timing.late_arrival_seconds
        self._prepaid: set[str] = set()  # client order ids whose create budget is taken
        self._fill_poll_interval = fill_poll_interval
        self._fill_poll_attempts = fill_poll_attempts
        self._read_attempts = read_attempts

    async def prepare(self, requests: Sequence[OrderRequest]) -> None:
        # Both legs' create budgets at once (spot and linear are separate budgets):
        # they wait together, then neither waits again on its way out.
        await self._limits.wait_all([("order/create", r.category.value) for r in requests])
        self._prepaid.update(r.client_order_id for r in requests)

    async def place_order(self, request: OrderRequest) -> OrderResult:
        where = f"{request.symbol} order {request.client_order_id}"
        try:
            qty = await self._checked_quantity(request, where)
        except OrchestratorError:
            raise
        except (ccxt.BaseError, *_PARSE_ERRORS) as exc:
            raise OrderRejected(f"{where}: not sent: {self._describe(exc)}") from None
        params: dict[str, Any] = {"clientOrderId": request.client_order_id}
        if request.reduce_only:
            params["reduceOnly"] = True
        if request.symbol in self._hedged:
            # Hedge mode: every order names its side; the short side, which the hedge
            # holds, opens with a sell and closes with a reduce-only buy.
            params["positionIdx"] = SHORT_SIDE
        try:
            # Never abandon the request in flight (the client timeout bounds it), and keep
            # ccxt's precision code from changing the caller's decimal rounding and traps.
            with anyio.CancelScope(shield=True), decimal.localcontext():
                if request.client_order_id in self._prepaid:
                    self._prepaid.discard(request.client_order_id)
                else:
                    await self._limits.wait("order/create", request.category.value)
                # No price: a spot market buy then states its qty in the base coin.
                created = await self._exchange.create_order(
                    request.symbol, "market", request.side.value, qty, None, params
                )
            order_id = self._created_id(created, request.client_order_id)
        except ccxt.BaseError as exc:
            raise self._create_error(exc, where) from None
        except _UNREADABLE as exc:
            raise OrderOutcomeUnknown(
                f"{where}: the venue's answer to the create could not be read, the order "
                f"may be live; look it up by client id: {self._describe(exc)}"
            ) from None
        fetch = partial(
            self._exchange.fetch_order, order_id, request.symbol, {"acknowledged": True}
        )
        read = partial(self._fill, fetch, request, order_id)
        try:
            result = await read()
            for _ in range(self._fill_poll_attempts):
                if result.status is not OrderStatus.OPEN:
                    break
                await anyio.sleep(self._fill_poll_interval)
                result = await read()
        except (ccxt.BaseError, *_UNREADABLE) as exc:
            raise OrderOutcomeUnknown(
                f"{where}: accepted as {order_id}, but reading its fill failed; "
                f"look it up by client id: {self._describe(exc)}",
                order_id=order_id,
            ) from None
        return result

    async def _fill(
        self, fetch: Callable[[], Awaitable[Any]], request: OrderRequest, order_id: str
    ) -> OrderResult:
        order = await self._read(fetch, "order/realtime")
        result = self._result(
            order, request.symbol, request.category, request.quantity,
            request.client_order_id, order_id,
        )  # fmt: skip
        return await self._with_fee(order, result)

    async def cancel_order(
        self, order_id: str, symbol: str, category: Category = Category.LINEAR
    ) -> bool:
        # ccxt derives Bybit's category from the symbol's market, so ``category`` is not sent.
        where = f"{symbol} order {order_id}"
        try:
            await self._limits.wait("order/cancel", category.value)
            answer = await self._exchange.cancel_order(order_id, symbol)
            if not isinstance(answer, dict):
                raise _Unusable(f"the answer is a {type(answer).__name__}, not an order")
            problem = order_id_problem(answer.get("id"))
            if problem is not None:
                raise _Unusable(problem)
            if answer["id"] != order_id:
                raise _Unusable(f"the answer names order {answer['id']!r}")
        except ccxt.OrderNotFound:
            return False
        except (ccxt.BaseError, *_UNREADABLE) as exc:
            if not isinstance(exc, ccxt.BaseError) or _may_have_happened(exc):
                raise OrderOutcomeUnknown(
                    f"{where}: cancel may or may not have happened: {self._describe(exc)}"
                ) from None
            raise OrderRejected(f"{where}: cancel refused: {self._describe(exc)}") from None
        return True

    async def fetch_order_by_client_id(
        self, client_order_id: str, symbol: str
    ) -> OrderResult | None:
        """None only on the venue's sound answer that it holds no such order; an answer
        that cannot be read or used raises OrderOutcomeUnknown (ask again)."""
        where = f"{symbol} order {client_order_id}"
        params = {"orderLinkId": client_order_id}
        try:
            category = await self._category_of(symbol, where)
            # Open orders first, then history: after a venue restart closed orders are only there.
            for fetch, endpoint in (
                (self._exchange.fetch_open_orders, "order/realtime"),
                (self._exchange.fetch_canceled_and_closed_orders, "order/history"),
            ):
                call = partial(fetch, symbol, params=params)
                orders = await self._read(call, endpoint)
                if not isinstance(orders, list):
                    raise _Unusable(f"{endpoint} answered a {type(orders).__name__}, not a list")
                # Asked by client id: every entry must be that order, else the answer is off.
                for order in orders:
                    result = self._result(order, symbol, category, None, client_order_id)
                    return await self._with_fee(order, result)
        except OrchestratorError:
            raise
        except (ccxt.BaseError, *_UNREADABLE) as exc:
            raise OrderOutcomeUnknown(
                f"{where}: looking it up failed: {self._describe(exc)}"
            ) from None
        return None

    async def fetch_holdings(self, spot: Instrument, perp: Instrument) -> Holdings:
        """The coin the wallet has free to sell, and the perp's short, as the venue says."""
        try:
            balance = await self._read(self._exchange.fetch_balance, "account/wallet-balance")
            positions = await self._read(
                partial(self._exchange.fetch_positions, [perp.symbol]), "position/list"
            )
            return _holdings(balance, positions, spot, perp)
        except (ccxt.BaseError, *_UNREADABLE) as exc:
            raise OrderOutcomeUnknown(
                f"reading balances and positions failed: {self._describe(exc)}"
            ) from None

    async def outside_trades(
        self, instruments: Sequence[Instrument], since_ms: int, known: Collection[str]
    ) -> list[OrderResult]:
        """The executions on these markets since ``since_ms`` of orders not in ``known``
        (the run's own order ids) nor already taken in (execution ids in ``known``): the
        owner's own trades, auto-deleveraging (``AdlTrade``), liquidations (``BustTrade``),
        each as a filled order at the venue's price and fee. Funding is not a trade."""
        found: list[OrderResult] = []
        try:
            for inst in instruments:
                # ccxt asks for execType=Trade unless told: ADL and liquidations are
                # listed only when asked for by their own types (perps only).
                kinds = ("Trade",) if inst.category is Category.SPOT else _OUTSIDE_KINDS
                for kind in sorted(kinds):
                    call = partial(
                        self._exchange.fetch_my_trades, inst.symbol, since_ms, 100,
                        {"execType": kind},
                    )  # fmt: skip
                    trades = await self._read(call, "execution/list")
                    if not isinstance(trades, list):
                        raise _Unusable(f"the executions are a {type(trades).__name__}")
                    for trade in trades:
                        result = _outside(trade, inst, known)
                        if result is not None:
                            found.append(result)
        except (ccxt.BaseError, *_UNREADABLE) as exc:
            raise OrderOutcomeUnknown(
                f"reading the executions failed: {self._describe(exc)}"
            ) from None
        return found

    async def _read(self, call: Callable[[], Awaitable[T]], endpoint: str) -> T:
        """A read, paced, retried on network errors only: a wider predicate would swallow
        cancellation."""

        async def paced() -> T:
            await self._limits.wait(endpoint)
            return await call()

        return await retry_network_errors(
            paced, attempts=self._read_attempts, base_delay=0.05, max_delay=1.0
        )

    async def _with_fee(self, order: dict[str, Any], result: OrderResult) -> OrderResult:
        """The fill with its fee. ccxt reads Bybit's fee only from ``cumFeeDetail``; an
        answer without it (older answers, some accounts) says nothing of the fee, which
        is not zero: a spot buy's is taken in the coin bought, and the close must not sell
        it. So it is read from the venue's own record, the order's executions."""
        if result.filled_qty <= 0 or order.get("fee") is not None:
            return result
        call = partial(self._exchange.fetch_order_trades, result.order_id, result.symbol)
        trades = await self._read(call, "execution/list")
        fee, coin = _executions_fee(trades, result)
        return msgspec.structs.replace(result, fee=fee, fee_currency=coin)

    async def _category_of(self, symbol: str, where: str) -> Category:
        """The symbol's category; a ccxt error from loading the markets is left to the caller."""
        if not self._exchange.markets:  # loaded once; ccxt caches them
            await self._read(self._exchange.load_markets, "market/instruments-info")
        try:
            market = self._exchange.market(symbol)
        except ccxt.BadSymbol:
            raise InvalidOrderError(f"{where}: the venue lists no market {symbol!r}") from None
        category = _category(market)
        if category is None:
            raise InvalidOrderError(f"{where}: {symbol} is neither spot nor a linear perpetual")
        return category

    async def _checked_quantity(self, request: OrderRequest, where: str) -> str:
        """The quantity as ccxt will send it; refuses what ccxt would silently change."""
        if request.order_type is not OrderType.MARKET:
            raise InvalidOrderError(f"{where}: live trading sends market orders only")
        if await self._category_of(request.symbol, where) is not request.category:
            raise InvalidOrderError(f"{where}: {request.symbol} is not a {request.category} market")
        try:
            with decimal.localcontext():
                qty = str(self._exchange.amount_to_precision(request.symbol, request.quantity))
        except ccxt.InvalidOrder as exc:
            raise InvalidOrderError(f"{where}: {self._describe(exc)}") from None
        # ccxt truncates to the venue's quantity step; a hedge leg must not shrink unseen.
        if Decimal(qty) != request.quantity:
            raise InvalidOrderError(
                f"{where}: quantity {request.quantity} is not a multiple of the venue's step "
                f"(ccxt would send {qty})"
            )
        return qty

    def _create_error(self, exc: Exception, where: str) -> OrchestratorError:
        said = self._describe(exc)
        code = _ret_code(exc)
        if isinstance(exc, ccxt.InsufficientFunds):
            return InsufficientFundsError(f"{where}: insufficient funds: {said}")
        if isinstance(exc, ccxt.DuplicateOrderId) or code in _DUPLICATE_CLIENT_ID:
            return OrderOutcomeUnknown(
                f"{where}: the venue already holds this client order id, an earlier attempt "
                f"was accepted; look it up: {said}"
            )
        if _may_have_happened(exc):
            return OrderOutcomeUnknown(
                f"{where}: the order may be live; look it up by client id: {said}"
            )
        return OrderRejected(f"{where}: rejected by the venue: {said}")

    def _describe(self, exc: Exception) -> str:
        """What the venue said, without the credentials (Bybit echoes the key on bad signatures)."""
        kind = "unusable answer" if isinstance(exc, _Unusable) else type(exc).__name__
        return scrub(self._exchange, f"{kind}: {exc}")

    @staticmethod
    def _created_id(created: Any, client_order_id: str) -> str:
        """The order id of a create's answer; _Unusable if it has none that can be used."""
        if not isinstance(created, dict):
            raise _Unusable(f"the answer is a {type(created).__name__}, not an order")
        problem = order_id_problem(created.get("id"))
        if problem is not None:
            raise _Unusable(problem)
        echoed = created.get("clientOrderId")
        if echoed is not None and echoed != client_order_id:
            raise _Unusable(f"the answer names client order id {echoed!r}")
        return str(created["id"])

    def _result(
        self,
        order: Any,
        symbol: str,
        category: Category,
        requested: Decimal | None,
        client_order_id: str,
        order_id: str | None = None,
    ) -> OrderResult:
        """The venue's order as an OrderResult; _Unusable rather than a guess when it
        is not the order asked for, or a status, side or number cannot be read."""
        if not isinstance(order, dict):
            raise _Unusable(f"an entry is a {type(order).__name__}, not an order")
        problem = order_id_problem(order.get("id"))
        if problem is not None:
            raise _Unusable(problem)
        if order_id is not None and order["id"] != order_id:
            raise _Unusable(f"order {order['id']!r} where {order_id!r} was asked for")
        if order.get("clientOrderId") != client_order_id:
            raise _Unusable(
                f"order {order['id']} has client order id {order.get('clientOrderId')!r}"
            )
        status, side = order.get("status"), order.get("side")
        if status not in _STATUSES:
            raise _Unusable(f"order {order['id']} has status {status!r}")
        if side not in ("buy", "sell"):
            raise _Unusable(f"order {order['id']} has side {side!r}")
        info = order.get("info")
        info = info if isinstance(info, dict) else {}
        filled = _number(order.get("filled"), "filled", info.get("cumExecQty"))
        amount = _number(order.get("amount"), "amount", info.get("qty"))
        average = _number(order.get("average"), "average", info.get("avgPrice"))
        if filled is None or filled < 0:
            raise _Unusable(f"order {order['id']} has filled {order.get('filled')!r}")
        if amount is not None and amount <= 0:
            raise _Unusable(f"order {order['id']} has amount {order.get('amount')!r}")
        if filled > 0 and (average is None or average <= 0):
            raise _Unusable(f"order {order['id']} filled {filled} at {order.get('average')!r}")
        if requested is None:
            requested = amount if amount is not None else filled
        if status not in _DONE:
            state = OrderStatus.OPEN
        elif filled <= 0:
            state = OrderStatus.CANCELLED
        elif amount is not None and filled < amount:
            state = OrderStatus.PARTIALLY_FILLED
        else:
            state = OrderStatus.FILLED
        # ccxt reports Bybit's cumFeeDetail as ``fee``; a spot buy pays it in the base coin.
        fee = order.get("fee") or {}
        if not isinstance(fee, dict):
            raise _Unusable(f"order {order['id']} has fee {fee!r}")
        fee_currency = fee.get("currency")
        detail = info.get("cumFeeDetail")
        detail = detail if isinstance(detail, dict) else {}
        in_detail = detail.get(fee_currency) if isinstance(fee_currency, str) else None
        fee_cost = _number(fee.get("cost"), "fee", in_detail, info.get("cumExecFee"))
        if fee_cost is None or (fee_cost == 0 and not fee_currency):
            fee_cost, fee_currency = ZERO, str(self._exchange.market(symbol)["quote"])
        elif not isinstance(fee_currency, str) or not fee_currency:
            raise _Unusable(f"order {order['id']} pays a fee of {fee_cost} in {fee_currency!r}")
        return OrderResult(
            client_order_id=client_order_id,
            order_id=str(order["id"]),
            symbol=symbol,
            side=Side(side),
            category=category,
            status=state,
            requested_qty=requested,
            filled_qty=filled,
            avg_price=average if filled > 0 else None,
            fee=fee_cost,
            fee_currency=fee_currency,
            is_simulated=False,
        )


_OUTSIDE_KINDS = frozenset(OUTSIDE_KINDS)


def _outside(trade: Any, inst: Instrument, known: Collection[str]) -> OrderResult | None:
    """One execution as a filled order, unless it is the run's own (or known) or not a
    trade; _Unusable where it cannot be read."""
    info = trade.get("info") if isinstance(trade, dict) else None
    if not isinstance(info, dict):
        raise _Unusable(f"an execution without its venue record: {trade!r:.200}")
    exec_id, order_id = str(info.get("execId") or ""), str(info.get("orderId") or "")
    if not exec_id or exec_id in known or order_id in known:
        return None
    kind = str(info.get("execType") or "Trade")
    if kind not in _OUTSIDE_KINDS:
        return None
    side = str(info.get("side", "")).lower()
    qty = _number(info.get("execQty"), "execQty")
    price = _number(info.get("execPrice"), "execPrice")
    fee = _number(info.get("execFee"), "execFee") or ZERO
    if side not in ("buy", "sell") or not qty or qty <= 0 or price is None or price <= 0:
        raise _Unusable(f"execution {exec_id}: {side} {qty} at {price}")
    coin = info.get("feeCurrency") or (trade.get("fee") or {}).get("currency") or inst.quote
    return OrderResult(
        client_order_id="",
        order_id=exec_id,
        symbol=inst.symbol,
        side=Side(side),
        category=inst.category,
        status=OrderStatus.FILLED,
        requested_qty=qty,
        filled_qty=qty,
        avg_price=price,
        fee=fee,
        fee_currency=str(coin),
        is_simulated=False,
        exec_type=kind,
    )


def _executions_fee(trades: Any, result: OrderResult) -> tuple[Decimal, str]:
    """The fee of ``result``'s fill from its executions (Bybit's ``execFee``, positive
    when paid, in ``feeCurrency``); _Unusable until they account for the whole fill (the
    execution list lags the order) or when they cannot be read."""
    where = f"order {result.order_id}"
    if not isinstance(trades, list):
        raise _Unusable(f"the executions of {where} are a {type(trades).__name__}, not a list")
    qty, fees = ZERO, dict[str, Decimal]()
    for trade in trades:
        info = trade.get("info") if isinstance(trade, dict) else None
        if not isinstance(info, dict) or info.get("orderId") != result.order_id:
            raise _Unusable(f"an execution listed for {where} is not one of it: {trade!r}")
        if info.get("execType", "Trade") != "Trade":
            continue
        qty += _number(info.get("execQty"), "execQty") or ZERO
        fee = _number(info.get("execFee"), "execFee")
        # Bybit names the coin (feeCurrency); ccxt infers it where the answer does not.
        coin = info.get("feeCurrency") or (trade.get("fee") or {}).get("currency")
        if fee is None or not isinstance(coin, str) or not coin:
            raise _Unusable(f"an execution of {where} has fee {fee} in {coin!r}")
        fees[coin] = fees.get(coin, ZERO) + fee
    if qty != result.filled_qty:
        raise _Unusable(
            f"the venue's executions of {where} show {qty} of the {result.filled_qty} filled: "
            "its fee is not known yet"
        )
    if len(fees) != 1:
        raise _Unusable(f"the executions of {where} pay fees in {sorted(fees)}")
    ((coin, fee),) = fees.items()
    return fee, coin


def _holdings(balance: Any, positions: Any, spot: Instrument, perp: Instrument) -> Holdings:
    """The spot coin free to sell and the perp's short from ccxt's balance and positions;
    _Unusable where they cannot be read (a coin the wallet does not list is none held)."""
    if not isinstance(balance, dict):
        raise _Unusable(f"the balance is a {type(balance).__name__}")
    coin = balance.get(spot.base)
    held = ZERO
    if coin is not None:
        if not isinstance(coin, dict):
            raise _Unusable(f"the {spot.base} balance is {coin!r}")
        free = _number(coin.get("free"), f"{spot.base} free")
        total = _number(coin.get("total"), f"{spot.base} total")
        held = free if free is not None else total if total is not None else ZERO
        if held < 0:
            raise _Unusable(f"the wallet holds {held} {spot.base}")
    if not isinstance(positions, list):
        raise _Unusable(f"the positions are a {type(positions).__name__}, not a list")
    short = ZERO
    for position in positions:
        if not isinstance(position, dict) or not isinstance(position.get("symbol"), str):
            raise _Unusable(f"a position without a symbol: {position!r}")
        if position["symbol"] != perp.symbol:
            continue
        side = position.get("side")
        contracts = _number(position.get("contracts"), f"{perp.symbol} contracts")
        if side not in ("long", "short", None) or (side is not None and contracts is None):
            raise _Unusable(f"{perp.symbol} position: side {side!r}, {contracts} contracts")
        if contracts is not None and contracts < 0:
            raise _Unusable(f"{perp.symbol} position of {contracts} contracts")
        if side == "short" and contracts is not None:
            short += contracts
    return Holdings(spot=held, perp_short=short)
