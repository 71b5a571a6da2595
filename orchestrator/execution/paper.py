"""Simulated fills on the TickerService's prices (PAPR-01).

Market orders fill at once at the latest price moved 0.05 % against the taker,
pay the taker fee of their category, and move virtual balances. Fees are charged
the way Bybit charges them: in the coin the order receives, so a spot buy pays
its fee in the base coin (buying 0.01 BTC leaves 0.00999 BTC), a spot sell and
every perp order in the quote currency. Paper then holds what live holds. A perp
position is netted per symbol with its average entry price; its margin
(notional / leverage) is held back from the quote balance while it is open.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

import msgspec

from orchestrator.exceptions import (
    InsufficientFundsError,
    InvalidOrderError,
    OrderOutcomeUnknown,
    OrderRejected,
)
from orchestrator.execution.base import Executor
from orchestrator.fees import FeeCalculator
from orchestrator.market.ticker import TickerService
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
from orchestrator.settings import FeeSettings

DEFAULT_SLIPPAGE = Decimal("0.0005")


@dataclass(frozen=True, slots=True)
class PerpHolding:
    size: Decimal = ZERO  # signed: negative is short
    entry_price: Decimal = ZERO


NOTHING_HELD = PerpHolding()


class PaperExecutor(Executor):
    def __init__(
        self,
        ticker: TickerService,
        fees: FeeSettings,
        instruments: Iterable[Instrument],
        *,
        slippage: Decimal = DEFAULT_SLIPPAGE,
        leverage: Decimal = Decimal(1),
    ) -> None:
        if not ZERO <= slippage < 1:
            raise ValueError(f"slippage must be a fraction in [0, 1), got {slippage}")
        if not leverage.is_finite() or leverage <= 0:
            raise ValueError(f"leverage must be positive, got {leverage}")
        self._ticker = ticker
        self._fees = FeeCalculator(fees)
        self._instruments = {i.symbol: i for i in instruments}
        self._slippage = slippage
        self._leverage = leverage
        self._balances: dict[str, Decimal] = {}
        self._perps: dict[str, PerpHolding] = {}
        # held_perps' answer until a perp is traded again: a run asks at every funding
        # settlement (its journal's balances), and most of the perps it has traded are
        # flat by then.
        self._held: dict[str, tuple[Decimal, Decimal]] | None = None
        self._orders: dict[str, OrderResult] = {}  # by client order id
        self._ids = itertools.count(1)

    # -- balances

    def set_initial_balance(self, currency: str, amount: Decimal) -> None:
        self._balances[currency] = amount

    def balance(self, currency: str) -> Decimal:
        return self._balances.get(currency, ZERO)

    def get_virtual_balance(self) -> dict[str, Decimal]:
        """Wallet balance per currency (realised; open perp PnL not included)."""
        return dict(self._balances)

    def get_perp_position(self, symbol: str) -> PerpHolding:
        """Net perp position: size (negative = short) and average entry price."""
        return self._perps.get(symbol, NOTHING_HELD)  # frozen: no copy needed

    def held_perps(self) -> dict[str, tuple[Decimal, Decimal]]:
        """Every perp position held: symbol -> (size, entry price), in the order the
        perps were first traded (a new dict each call)."""
        if self._held is None:
            self._held = {s: (h.size, h.entry_price) for s, h in self._perps.items() if h.size}
        return dict(self._held)

    def margin_in_use(self, currency: str) -> Decimal:
        return sum(
            (
                abs(h.size) * h.entry_price / self._leverage
                for symbol, h in self._perps.items()
                if self._instruments[symbol].quote == currency
            ),
            ZERO,
        )

    def available_balance(self, currency: str) -> Decimal:
        """What a new order may spend: the balance less the margin open perps hold."""
        return self._balances.get(currency, ZERO) - self.margin_in_use(currency)

    def settle_funding(self, symbol: str, rate: Decimal, price: Decimal) -> Decimal:
        """Pay one funding settlement on the perp position in ``symbol``.

        Positive rates: longs pay shorts. Returns what the position received
        (negative when it paid), already applied to the quote balance.
        """
        held = self._perps.get(symbol)
        if held is None or held.size == 0:
            return ZERO
        amount = -held.size * price * rate
        quote = self._instruments[symbol].quote
        self._balances[quote] = self._balances.get(quote, ZERO) + amount
        return amount

    # -- Executor

    async def place_order(self, request: OrderRequest) -> OrderResult:
        instrument = self._instruments.get(request.symbol)
        if instrument is None:
            raise InvalidOrderError(f"unknown symbol {request.symbol!r}")
        if instrument.category is not request.category:
            raise InvalidOrderError(
                f"{request.symbol} is a {instrument.category} instrument, "
                f"the order says {request.category}"
            )
        if request.order_type is not OrderType.MARKET:
            raise InvalidOrderError("the paper executor fills market orders only")
        if request.client_order_id in self._orders:
            # As on Bybit: a reused orderLinkId means the first order was accepted.
            raise OrderOutcomeUnknown(
                f"client order id {request.client_order_id} was already used; look it up"
            )
        price = self._ticker.require_price(request.symbol)
        buy = request.side is Side.BUY
        fill_price = price * (1 + self._slippage) if buy else price * (1 - self._slippage)
        qty = request.quantity
        fee = self._fees.fee(request.category, qty, fill_price)
        fee_currency = instrument.quote
        if request.category is Category.SPOT:
            if buy:  # charged in the coin bought, as on Bybit
                fee, fee_currency = qty * self._fees.rate(request.category), instrument.base
            self._fill_spot(instrument, buy, qty, fill_price, fee)
        else:
            self._fill_perp(instrument, request, fill_price, fee)
        result = OrderResult(
            client_order_id=request.client_order_id,
            order_id=f"paper_{next(self._ids)}",  # deterministic: a replay repeats itself
            symbol=request.symbol,
            side=request.side,
            category=request.category,
            status=OrderStatus.FILLED,
            requested_qty=qty,
            filled_qty=qty,
            avg_price=fill_price,
            fee=fee,
            fee_currency=fee_currency,
            is_simulated=True,
        )
        self._orders[request.client_order_id] = result
        return result

    async def cancel_order(
        self, order_id: str, symbol: str, category: Category = Category.LINEAR
    ) -> bool:
        # Paper market orders fill at once: nothing is ever left working.
        return True

    async def fetch_order_by_client_id(
        self, client_order_id: str, symbol: str
    ) -> OrderResult | None:
        result = self._orders.get(client_order_id)
        return result if result is not None and result.symbol == symbol else None

    async def fetch_holdings(self, spot: Instrument, perp: Instrument) -> Holdings:
        size = self._perps.get(perp.symbol, PerpHolding()).size
        return Holdings(spot=self.balance(spot.base), perp_short=max(-size, ZERO))

    # -- after a restart

    def take_back(self, request: OrderRequest, result: OrderResult) -> None:
        """An order this paper venue answered before a restart, as the run's journal
        recorded it: its fill applied to the wallet and perps again, and found by its
        client order id. (A dry run's venue lived in the process that stopped; its
        journal is all that is left of what it did.)"""
        self._orders[request.client_order_id] = result
        if result.filled_qty <= 0 or result.avg_price is None:
            return
        inst = self._instruments[request.symbol]
        if inst.category is Category.SPOT:
            buy = request.side is Side.BUY
            self._fill_spot(inst, buy, result.filled_qty, result.avg_price, result.fee)
        else:
            filled = msgspec.structs.replace(request, quantity=result.filled_qty)
            self._fill_perp(inst, filled, result.avg_price, result.fee)

    def take_back_funding(self, symbol: str, amount: Decimal) -> None:
        """A funding payment made before a restart (the journal's ledger entry)."""
        quote = self._instruments[symbol].quote
        self._balances[quote] = self._balances.get(quote, ZERO) + amount

    # -- fills

    def _fill_spot(
        self, inst: Instrument, buy: bool, qty: Decimal, price: Decimal, fee: Decimal
    ) -> None:
        """A buy's ``fee`` is in the base coin, a sell's in the quote currency."""
        balances = self._balances
        if buy:
            cost = qty * price
            available = self.available_balance(inst.quote)
            if cost > available:
                raise InsufficientFundsError(
                    f"{inst.symbol}: buying {qty} costs {cost} {inst.quote}, {available} available"
                )
            balances[inst.quote] = balances.get(inst.quote, ZERO) - cost
            balances[inst.base] = balances.get(inst.base, ZERO) + qty - fee
        else:
            held = balances.get(inst.base, ZERO)
            if qty > held:
                raise InsufficientFundsError(
                    f"{inst.symbol}: selling {qty} {inst.base}, {held} held"
                )
            balances[inst.base] = held - qty
            balances[inst.quote] = balances.get(inst.quote, ZERO) + qty * price - fee

    def _fill_perp(
        self, inst: Instrument, request: OrderRequest, price: Decimal, fee: Decimal
    ) -> None:
        held = self._perps.get(inst.symbol, PerpHolding())
        delta = request.quantity if request.side is Side.BUY else -request.quantity
        reducing = held.size != 0 and (held.size > 0) != (delta > 0)
        if request.reduce_only and (not reducing or abs(delta) > abs(held.size)):
            raise OrderRejected(
                f"{inst.symbol}: reduce-only {request.side} {request.quantity} would open or "
                f"increase a position (held {held.size})"
            )
        closed = min(abs(delta), abs(held.size)) if reducing else ZERO
        opened = abs(delta) - closed
        # A short gains when the price falls: PnL = closed * (exit - entry) * sign(held).
        realised = closed * (price - held.entry_price) * (1 if held.size > 0 else -1)
        if opened > 0:
            margin = opened * price / self._leverage
            available = self.available_balance(inst.quote) + realised
            if margin + fee > available:
                raise InsufficientFundsError(
                    f"{inst.symbol}: {request.side} {request.quantity} needs {margin} "
                    f"{inst.quote} margin and {fee} fee, {available} available"
                )
        size = held.size + delta
        if size == 0:
            entry = ZERO
        elif opened == 0:
            entry = held.entry_price
        elif reducing:  # flipped through zero: the rest opens at this price
            entry = price
        else:
            entry = (abs(held.size) * held.entry_price + opened * price) / abs(size)
        self._perps[inst.symbol] = PerpHolding(size, entry)
        self._held = None
        self._balances[inst.quote] = self._balances.get(inst.quote, ZERO) + realised - fee
