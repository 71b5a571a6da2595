"""Live orders on Bybit through a ccxt async client, mapped onto the Executor contract."""

from __future__ import annotations

import decimal
import math
from collections.abc import Awaitable, Callable, Collection, Sequence
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar

import anyio
import ccxt
import msgspec

from orchestrator.bybit.client import order_id_problem, scrub
from orchestrator.bybit.pages import every_page, executions_between
from orchestrator.bybit.retry import retry_network_errors
from orchestrator.exceptions import (
    InsufficientFundsError,
    InvalidOrderError,
    OrchestratorError,
    OrderOutcomeUnknown,
    OrderRejected,
)
from orchestrator.execution.answers import (
    DONE,
    DUPLICATE_CLIENT_ID,
    OUTSIDE_TYPES,
    PARSE_ERRORS,
    STATUSES,
    UNREADABLE,
    Unusable,
    category_of,
    decimal_of,
    executions_fee,
    holdings_of,
    may_have_happened,
    outside_trade,
    ret_code,
)
from orchestrator.execution.base import Executor
from orchestrator.execution.limits import RateLimiter
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
SHORT_SIDE = 2  # hedge mode's positionIdx of the short side
# A working order is read again at most this far apart: a leg the venue fills late is
# seen within a second of it, at a few reads a second at most.
MAX_FILL_POLL_SECONDS = 1.0
# The wait for a working order ends this long before the caller's deadline, so that the
# last reading is returned rather than cut off with the caller's scope.
BEFORE_DEADLINE_SECONDS = 0.05


class LiveExecutor(Executor):
    """Sends market orders to Bybit through ``exchange``, a ``ccxt.async_support.bybit``.

    The caller builds the exchange (keys from the environment), leaves its
    ``maxRetriesOnFailure`` at 0, and closes it. Order creation is never retried:
    an ambiguous failure raises ``OrderOutcomeUnknown`` and the order is then found
    by its client order id. Reads retry network errors ``read_attempts`` times.
    A filled market order usually reads as done at once; one that still works (a thin
    book, a venue under load) is read again, ``fill_poll_interval`` seconds apart at
    first, doubling up to ``MAX_FILL_POLL_SECONDS``, until it is done or the caller's
    deadline is about to pass (the LegSender's: the position's
    ``trading.order_timeout_seconds``); then it is returned as OPEN, for the caller to
    cancel it and read what filled. Without a deadline, ``fill_poll_attempts`` reads.

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
        deadline = anyio.current_effective_deadline()  # the caller's, outside the shield below
        try:
            qty = await self._checked_quantity(request, where)
        except OrchestratorError:
            raise
        except (ccxt.BaseError, *PARSE_ERRORS) as exc:
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
        except UNREADABLE as exc:
            raise OrderOutcomeUnknown(
                f"{where}: the venue's answer to the create could not be read, the order "
                f"may be live; look it up by client id: {self._describe(exc)}"
            ) from None
        fetch = partial(
            self._exchange.fetch_order, order_id, request.symbol, {"acknowledged": True}
        )
        read = partial(self._fill, fetch, request, order_id)
        try:
            result = await self._until_done(read, await read(), deadline)
        except (ccxt.BaseError, *UNREADABLE) as exc:
            raise OrderOutcomeUnknown(
                f"{where}: accepted as {order_id}, but reading its fill failed; "
                f"look it up by client id: {self._describe(exc)}",
                order_id=order_id,
            ) from None
        return result

    async def _until_done(
        self, read: Callable[[], Awaitable[OrderResult]], result: OrderResult, deadline: float
    ) -> OrderResult:
        """``result`` read again while the order works, until just before ``deadline``
        (``fill_poll_attempts`` times when there is none): the last reading."""
        interval = self._fill_poll_interval
        attempts = self._fill_poll_attempts if deadline == math.inf else None
        # A scope of its own: a read it cuts off leaves the last reading standing (the
        # order acknowledged, its id known), where the caller's would leave it unknown.
        with anyio.move_on_at(deadline - BEFORE_DEADLINE_SECONDS):
            while result.status is OrderStatus.OPEN and attempts != 0:
                await anyio.sleep(interval)
                result = await read()
                interval = min(2 * interval, MAX_FILL_POLL_SECONDS)
                if attempts is not None:
                    attempts -= 1
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
                raise Unusable(f"the answer is a {type(answer).__name__}, not an order")
            problem = order_id_problem(answer.get("id"))
            if problem is not None:
                raise Unusable(problem)
            if answer["id"] != order_id:
                raise Unusable(f"the answer names order {answer['id']!r}")
        except ccxt.OrderNotFound:
            return False
        except (ccxt.BaseError, *UNREADABLE) as exc:
            if not isinstance(exc, ccxt.BaseError) or may_have_happened(exc):
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
                    raise Unusable(f"{endpoint} answered a {type(orders).__name__}, not a list")
                # Asked by client id: every entry must be that order, else the answer is off.
                for order in orders:
                    result = self._result(order, symbol, category, None, client_order_id)
                    return await self._with_fee(order, result)
        except OrchestratorError:
            raise
        except (ccxt.BaseError, *UNREADABLE) as exc:
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
            return holdings_of(balance, positions, spot, perp)
        except (ccxt.BaseError, *UNREADABLE) as exc:
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
            # Up to the venue's present: Bybit lists a week at a time, and a position
            # is often held for longer. From no later than it: the run's clock runs on
            # from its last reading, past a venue's that stands (a rehearsal's).
            now_ms = int(await self._read(self._exchange.fetch_time, "market/time"))
            since_ms = min(since_ms, now_ms)
            for inst in instruments:
                # ccxt asks for execType=Trade unless told: ADL and liquidations are
                # listed only when asked for by their own types (perps only).
                kinds = ("Trade",) if inst.category is Category.SPOT else OUTSIDE_TYPES
                for kind in sorted(kinds):
                    trades = await executions_between(
                        partial(self._executions, inst.symbol, {"execType": kind}),
                        since_ms,
                        now_ms,
                    )
                    for trade in trades:
                        result = outside_trade(trade, inst, known)
                        if result is not None:
                            found.append(result)
        except (ccxt.BaseError, *UNREADABLE) as exc:
            raise OrderOutcomeUnknown(
                f"reading the executions failed: {self._describe(exc)}"
            ) from None
        return found

    async def _executions(self, symbol: str, query: dict[str, Any], params: dict[str, Any]) -> Any:
        """One page of ``symbol``'s executions: ``params`` say which (bybit/pages.py)."""
        call = partial(self._exchange.fetch_my_trades, symbol, None, None, query | params)
        return await self._read(call, "execution/list")

    async def _order_executions(self, order_id: str, symbol: str, params: dict[str, Any]) -> Any:
        """One page of an order's executions."""
        call = partial(self._exchange.fetch_order_trades, order_id, symbol, None, None, params)
        return await self._read(call, "execution/list")

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
        # Every page: an order may fill in more executions than one page holds.
        trades = await every_page(
            partial(self._order_executions, result.order_id, result.symbol), {}
        )
        fee, coin = executions_fee(trades, result)
        return msgspec.structs.replace(result, fee=fee, fee_currency=coin)

    async def _category_of(self, symbol: str, where: str) -> Category:
        """The symbol's category; a ccxt error from loading the markets is left to the caller."""
        if not self._exchange.markets:  # loaded once; ccxt caches them
            await self._read(self._exchange.load_markets, "market/instruments-info")
        try:
            market = self._exchange.market(symbol)
        except ccxt.BadSymbol:
            raise InvalidOrderError(f"{where}: the venue lists no market {symbol!r}") from None
        category = category_of(market)
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
        code = ret_code(exc)
        if isinstance(exc, ccxt.InsufficientFunds):
            return InsufficientFundsError(f"{where}: insufficient funds: {said}")
        if isinstance(exc, ccxt.DuplicateOrderId) or code in DUPLICATE_CLIENT_ID:
            return OrderOutcomeUnknown(
                f"{where}: the venue already holds this client order id, an earlier attempt "
                f"was accepted; look it up: {said}"
            )
        if may_have_happened(exc):
            return OrderOutcomeUnknown(
                f"{where}: the order may be live; look it up by client id: {said}"
            )
        return OrderRejected(f"{where}: rejected by the venue: {said}")

    def _describe(self, exc: Exception) -> str:
        """What the venue said, without the credentials (Bybit echoes the key on bad signatures)."""
        kind = "unusable answer" if isinstance(exc, Unusable) else type(exc).__name__
        return scrub(self._exchange, f"{kind}: {exc}")

    @staticmethod
    def _created_id(created: Any, client_order_id: str) -> str:
        """The order id of a create's answer; Unusable if it has none that can be used."""
        if not isinstance(created, dict):
            raise Unusable(f"the answer is a {type(created).__name__}, not an order")
        problem = order_id_problem(created.get("id"))
        if problem is not None:
            raise Unusable(problem)
        echoed = created.get("clientOrderId")
        if echoed is not None and echoed != client_order_id:
            raise Unusable(f"the answer names client order id {echoed!r}")
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
        """The venue's order as an OrderResult; Unusable rather than a guess when it
        is not the order asked for, or a status, side or number cannot be read."""
        if not isinstance(order, dict):
            raise Unusable(f"an entry is a {type(order).__name__}, not an order")
        problem = order_id_problem(order.get("id"))
        if problem is not None:
            raise Unusable(problem)
        if order_id is not None and order["id"] != order_id:
            raise Unusable(f"order {order['id']!r} where {order_id!r} was asked for")
        if order.get("clientOrderId") != client_order_id:
            raise Unusable(
                f"order {order['id']} has client order id {order.get('clientOrderId')!r}"
            )
        status, side = order.get("status"), order.get("side")
        if status not in STATUSES:
            raise Unusable(f"order {order['id']} has status {status!r}")
        if side not in ("buy", "sell"):
            raise Unusable(f"order {order['id']} has side {side!r}")
        info = order.get("info")
        info = info if isinstance(info, dict) else {}
        filled = decimal_of(order.get("filled"), "filled", info.get("cumExecQty"))
        amount = decimal_of(order.get("amount"), "amount", info.get("qty"))
        average = decimal_of(order.get("average"), "average", info.get("avgPrice"))
        if filled is None or filled < 0:
            raise Unusable(f"order {order['id']} has filled {order.get('filled')!r}")
        if amount is not None and amount <= 0:
            raise Unusable(f"order {order['id']} has amount {order.get('amount')!r}")
        if filled > 0 and (average is None or average <= 0):
            raise Unusable(f"order {order['id']} filled {filled} at {order.get('average')!r}")
        if requested is None:
            requested = amount if amount is not None else filled
        if status not in DONE:
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
            raise Unusable(f"order {order['id']} has fee {fee!r}")
        fee_currency = fee.get("currency")
        detail = info.get("cumFeeDetail")
        detail = detail if isinstance(detail, dict) else {}
        in_detail = detail.get(fee_currency) if isinstance(fee_currency, str) else None
        fee_cost = decimal_of(fee.get("cost"), "fee", in_detail, info.get("cumExecFee"))
        if fee_cost is None or (fee_cost == 0 and not fee_currency):
            fee_cost, fee_currency = ZERO, str(self._exchange.market(symbol)["quote"])
        elif not isinstance(fee_currency, str) or not fee_currency:
            raise Unusable(f"order {order['id']} pays a fee of {fee_cost} in {fee_currency!r}")
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
