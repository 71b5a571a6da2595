"""Live orders on Bybit through a ccxt async client, mapped onto the Executor contract."""

from __future__ import annotations

import decimal
import re
from collections.abc import Awaitable, Callable
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar

import anyio
import ccxt

from orchestrator.exceptions import (
    InsufficientFundsError,
    InvalidOrderError,
    OrchestratorError,
    OrderOutcomeUnknown,
    OrderRejected,
)
from orchestrator.execution.base import Executor
from orchestrator.execution.limits import RateLimiter
from orchestrator.execution.retry import retry_network_errors
from orchestrator.models import (
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

# ccxt's unified statuses of an order that is done (Bybit's Filled, PartiallyFilledCanceled,
# Cancelled, Deactivated, Rejected); anything else may still fill.
_DONE = frozenset({"closed", "canceled", "expired", "rejected"})
# Bybit retCodes ccxt maps to classes that hide what they mean for us: a duplicate
# orderLinkId (an earlier attempt was accepted) is a plain InvalidOrder, and "System
# error" is a plain ExchangeError although the order may be live.
_DUPLICATE_CLIENT_ID = frozenset({"110072", "170141"})
_SYSTEM_ERROR = "10016"
# ccxt's exception message carries Bybit's JSON body: 'bybit {"retCode":110007,...}'.
_RET_CODE = re.compile(r'"retCode"\s*:\s*"?(\d+)')


def _decimal(value: Any) -> Decimal | None:
    """ccxt hands out floats; their shortest repr is the venue's decimal text."""
    return None if value is None else Decimal(str(value))


def _ret_code(exc: Exception) -> str | None:
    match = _RET_CODE.search(str(exc))
    return match.group(1) if match else None


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
    built with the same (``orchestrator.execution.bybit.make_exchange`` does); an
    order whose answer was lost may land until ``timing.late_arrival_seconds``
    after it was signed. Requests are paced by ``limiter`` (Bybit's per-endpoint,
    per-category budgets), not by ccxt's throttle, so the two legs leave together.
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
    ) -> None:
        self._exchange = exchange
        self._timing = timing or VenueTiming()
        self._limits = limiter or RateLimiter()
        self.late_arrival_seconds = self._timing.late_arrival_seconds
        self._fill_poll_interval = fill_poll_interval
        self._fill_poll_attempts = fill_poll_attempts
        self._read_attempts = read_attempts

    async def place_order(self, request: OrderRequest) -> OrderResult:
        where = f"{request.symbol} order {request.client_order_id}"
        try:
            qty = await self._checked_quantity(request, where)
        except ccxt.BaseError as exc:
            raise OrderRejected(f"{where}: not sent: {self._describe(exc)}") from None
        params: dict[str, Any] = {"clientOrderId": request.client_order_id}
        if request.reduce_only:
            params["reduceOnly"] = True
        try:
            # Never abandon the request in flight (the client timeout bounds it), and keep
            # ccxt's precision code from changing the caller's decimal rounding and traps.
            with anyio.CancelScope(shield=True), decimal.localcontext():
                await self._limits.wait("order/create", request.category.value)
                # No price: a spot market buy then states its qty in the base coin.
                created = await self._exchange.create_order(
                    request.symbol, "market", request.side.value, qty, None, params
                )
        except ccxt.BaseError as exc:
            raise self._create_error(exc, where) from None
        order_id = str(created["id"])
        fetch = partial(
            self._exchange.fetch_order, order_id, request.symbol, {"acknowledged": True}
        )
        try:
            order = await self._read(fetch, "order/realtime")
            for _ in range(self._fill_poll_attempts):
                if order["status"] in _DONE:
                    break
                await anyio.sleep(self._fill_poll_interval)
                order = await self._read(fetch, "order/realtime")
        except ccxt.BaseError as exc:
            raise OrderOutcomeUnknown(
                f"{where}: accepted as {order_id}, but reading its fill failed; "
                f"look it up by client id: {self._describe(exc)}"
            ) from None
        return self._result(order, request.symbol, request.category, request.quantity)

    async def cancel_order(
        self, order_id: str, symbol: str, category: Category = Category.LINEAR
    ) -> bool:
        # ccxt derives Bybit's category from the symbol's market, so ``category`` is not sent.
        try:
            await self._limits.wait("order/cancel", category.value)
            await self._exchange.cancel_order(order_id, symbol)
        except ccxt.OrderNotFound:
            return False
        except ccxt.OperationFailed as exc:
            raise OrderOutcomeUnknown(
                f"{symbol} order {order_id}: cancel may or may not have happened: "
                f"{self._describe(exc)}"
            ) from None
        except ccxt.BaseError as exc:
            raise OrderRejected(
                f"{symbol} order {order_id}: cancel refused: {self._describe(exc)}"
            ) from None
        return True

    async def fetch_order_by_client_id(
        self, client_order_id: str, symbol: str
    ) -> OrderResult | None:
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
                orders: list[Any] = await self._read(call, endpoint)
                for order in orders:
                    if order["clientOrderId"] == client_order_id:
                        return self._result(order, symbol, category, None)
        except ccxt.BaseError as exc:
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
        except ccxt.BaseError as exc:
            raise OrderOutcomeUnknown(
                f"reading balances and positions failed: {self._describe(exc)}"
            ) from None
        coin = balance.get(spot.base) or {}
        held = _decimal(coin.get("free"))
        if held is None:
            held = _decimal(coin.get("total")) or ZERO
        short = ZERO
        for position in positions:
            if position.get("symbol") == perp.symbol and position.get("side") == "short":
                short += _decimal(position.get("contracts")) or ZERO
        return Holdings(spot=held, perp_short=short)

    async def _read(self, call: Callable[[], Awaitable[T]], endpoint: str) -> T:
        """A read, paced, retried on network errors only: a wider predicate would swallow
        cancellation."""

        async def paced() -> T:
            await self._limits.wait(endpoint)
            return await call()

        return await retry_network_errors(
            paced, attempts=self._read_attempts, base_delay=0.05, max_delay=1.0
        )

    async def _category_of(self, symbol: str, where: str) -> Category:
        """The symbol's category; a ccxt error from loading the markets is left to the caller."""
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
        if isinstance(exc, ccxt.OperationFailed) or code == _SYSTEM_ERROR:
            return OrderOutcomeUnknown(
                f"{where}: the order may be live; look it up by client id: {said}"
            )
        return OrderRejected(f"{where}: rejected by the venue: {said}")

    def _describe(self, exc: Exception) -> str:
        """What the venue said, without the credentials (Bybit echoes the key on bad signatures)."""
        text = f"{type(exc).__name__}: {exc}"
        for secret in (self._exchange.apiKey, self._exchange.secret):
            if secret:
                text = text.replace(str(secret), "***")
        return text

    def _result(
        self, order: Any, symbol: str, category: Category, requested: Decimal | None
    ) -> OrderResult:
        filled = _decimal(order["filled"]) or ZERO
        amount = _decimal(order["amount"])
        if requested is None:
            requested = amount if amount is not None else filled
        if order["status"] not in _DONE:
            status = OrderStatus.OPEN
        elif filled <= 0:
            status = OrderStatus.CANCELLED
        elif amount is not None and filled < amount:
            status = OrderStatus.PARTIALLY_FILLED
        else:
            status = OrderStatus.FILLED
        # ccxt reports Bybit's cumFeeDetail as ``fee``; a spot buy pays it in the base coin.
        fee = order["fee"] or {}
        fee_cost = _decimal(fee.get("cost"))
        if fee_cost is None:
            fee_cost, fee_currency = ZERO, str(self._exchange.market(symbol)["quote"])
        else:
            fee_currency = str(fee["currency"])
        return OrderResult(
            client_order_id=str(order["clientOrderId"]),
            order_id=str(order["id"]),
            symbol=symbol,
            side=Side(order["side"]),
            category=category,
            status=status,
            requested_qty=requested,
            filled_qty=filled,
            avg_price=_decimal(order["average"]) if filled > 0 else None,
            fee=fee_cost,
            fee_currency=fee_currency,
            is_simulated=False,
        )
