"""The venue's books: instruments, one UNIFIED wallet, orders, netted perp positions,
executions (trades and funding), kept as records.py has them. Pure: no I/O and no
clock of its own; every call that needs the time is given it (epoch ms). Money is Decimal; views
are Bybit v5's JSON shapes, numbers as strings.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

from orchestrator.venue import codes
from orchestrator.venue.account import Account
from orchestrator.venue.codes import ERRORS, VenueError, error
from orchestrator.venue.records import (
    SETTLE_COIN,
    ZERO,
    Execution,
    Fill,
    Instrument,
    Order,
    Position,
)

MAINTENANCE_RATE = Decimal("0.005")  # Bybit's lowest risk tier of BTCUSDT and ETHUSDT


@dataclass
class Book:
    """Everything the venue holds. ``prices`` are keyed (category, symbol)."""

    instruments: dict[tuple[str, str], Instrument]
    spot_fee_rate: Decimal = Decimal("0.001")  # a spot buy pays it in the base coin
    perp_fee_rate: Decimal = Decimal("0.00055")
    slippage: Decimal = ZERO  # fraction of the price a taker pays beyond it
    default_leverage: Decimal = Decimal(1)
    order_id_prefix: str = ""
    # The retCodes it answers with, by name and category (Bybit's: codes.ERRORS).
    errors: dict[str, dict[str, tuple[int, str]]] = field(
        default_factory=lambda: {name: dict(entry) for name, entry in ERRORS.items()}
    )
    prices: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    wallet: dict[str, Decimal] = field(default_factory=dict)
    locked: dict[str, Decimal] = field(default_factory=dict)  # held for open orders
    leverage: dict[str, Decimal] = field(default_factory=dict)
    positions: dict[str, Position] = field(default_factory=dict)
    orders: dict[str, Order] = field(default_factory=dict)
    executions: list[Execution] = field(default_factory=list)
    account: Account = field(default_factory=Account)
    # The time an execution made at ``now_ms`` (the venue's wall clock) shows: a replay
    # of recorded data gives the market's clock, the one its answers carry, so that
    # executions are listed by the time a client asks for (Bybit has one clock).
    shown_ms: Callable[[int], int] = field(default=int)  # int: the wall clock's own
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _by_link: dict[tuple[str, str], str] = field(default_factory=dict)  # -> order id
    _timed: set[str] = field(default_factory=set)  # held orders that complete at a time

    # -- set up ---------------------------------------------------------------

    def error(self, name: str, category: str | None) -> VenueError:
        return error(name, category, self.errors)

    def set_price(self, symbol: str, price: Decimal, category: str | None = None) -> None:
        if not price.is_finite() or price <= 0:
            raise ValueError(f"{symbol}: price must be positive, got {price}")
        for cat in ("spot", "linear") if category is None else (category,):
            if (cat, symbol) not in self.instruments:
                raise KeyError(f"{cat} {symbol} is not listed")
            self.prices[cat, symbol] = price

    def price(self, category: str, symbol: str) -> Decimal:
        try:
            return self.prices[category, symbol]
        except KeyError:
            raise VenueError(codes.PARAMS_ERROR, f"venue has no price for {symbol}") from None

    def instrument(self, category: str, symbol: str) -> Instrument:
        found = self.instruments.get((category, symbol))
        if found is None:
            raise self.error("invalid_symbol", category)
        return found

    def available(self, coin: str) -> Decimal:
        free = self.wallet.get(coin, ZERO) - self.locked.get(coin, ZERO)
        if coin == SETTLE_COIN:
            free -= self.position_im()
        return free

    def position_im(self) -> Decimal:
        return sum(
            (abs(p.size) * p.avg_price / self.leverage_of(s) for s, p in self.positions.items()),
            ZERO,
        )

    def position_mm(self) -> Decimal:
        """The perps' maintenance margin: notional at the mark x the lowest risk tier's
        rate (Bybit's BTCUSDT and ETHUSDT: 0.5 %)."""
        total = ZERO
        for symbol, p in self.positions.items():
            if p.size:
                mark = self.prices.get(("linear", symbol), p.avg_price)
                total += abs(p.size) * mark * MAINTENANCE_RATE
        return total

    def margin_balance(self) -> Decimal:
        """What holds the maintenance margin on a unified account: the USDT wallet, the
        perps' unrealised PnL, and every other coin switched on as collateral at its spot
        price (a collateral ratio of 1: the shipped venue's simplification)."""
        total = self.wallet.get(SETTLE_COIN, ZERO) + self.unrealised()
        for coin, amount in self.wallet.items():
            if coin == SETTLE_COIN or coin in self.account.collateral_off or amount <= 0:
                continue
            price = self.prices.get(("spot", f"{coin}{SETTLE_COIN}"))
            if price is not None:
                total += amount * price
        return total

    def mm_rate(self) -> Decimal:
        """Bybit's accountMMRate: maintenance margin / margin balance; 1 liquidates."""
        mm, balance = self.position_mm(), self.margin_balance()
        if mm <= 0:
            return ZERO
        return (mm / balance).quantize(Decimal("0.0001")) if balance > 0 else Decimal(1)

    def leverage_of(self, symbol: str) -> Decimal:
        return self.leverage.get(symbol, self.default_leverage)

    # -- orders ---------------------------------------------------------------

    def check_create(self, body: Mapping[str, Any]) -> Order:
        """The order a create request asks for, validated; raises VenueError as Bybit would.

        Not placed yet: ``place`` does that (after the venue's faults have had their say).
        """
        category = str(body.get("category", ""))
        if category not in ("spot", "linear"):
            raise VenueError(codes.PARAMS_ERROR, "params error: category invalid")
        if category == "spot":
            self.account.may("Spot", "SpotTrade")
        else:
            self.account.may("ContractTrade", "Order")
        inst = self.instrument(category, str(body.get("symbol", "")))
        side = body.get("side")
        if side not in ("Buy", "Sell"):
            raise VenueError(codes.PARAMS_ERROR, "params error: side invalid")
        idx = 0
        if category == "linear":
            idx = self.account.check_position_idx(inst.symbol, body.get("positionIdx"))
        if body.get("orderType") != "Market":
            raise VenueError(codes.PARAMS_ERROR, "params error: this venue fills Market orders")
        try:
            qty = Decimal(str(body.get("qty")))
        except InvalidOperation:
            raise VenueError(codes.PARAMS_ERROR, "params error: qty invalid") from None
        if not qty.is_finite() or qty <= 0:
            raise VenueError(codes.PARAMS_ERROR, "params error: qty invalid")
        link_id = str(body.get("orderLinkId", ""))
        if link_id and self.find(category, link_id=link_id) is not None:
            raise self.error("duplicate_link_id", category)
        reduce_only = body.get("reduceOnly") is True
        if reduce_only and category == "spot":
            raise self.error("reduce_only", category)
        price = self.price(category, inst.symbol)
        unit = str(body.get("marketUnit", ""))
        base_qty = qty
        if (
            category == "spot"
            and side == "Buy"
            and (unit != "baseCoin" or not self.account.unified)
        ):
            # Bybit: a spot market buy states what to spend, and on a classic account
            # always (marketUnit is a unified account's parameter).
            unit = "quoteCoin"
            base_qty = (qty / self._fill_price(price, side)).quantize(inst.qty_step, ROUND_DOWN)
        elif category == "spot":
            unit = unit or "baseCoin"
        if unit != "quoteCoin" and qty % inst.qty_step != 0:
            raise self.error("qty_step", category)
        if base_qty < inst.min_qty:
            raise self.error("qty_too_small", category)
        if base_qty > inst.max_qty:
            raise self.error("qty_too_large", category)
        position = self.positions.get(inst.symbol)
        held = position.size if position else ZERO
        if idx:
            # Hedge mode: an order on the other side's index reduces that side. The book
            # nets one position per symbol, so it holds one side at a time.
            reduces = (idx == 2) == (side == "Buy")
            if not reduces and held and (held > 0) != (side == "Buy"):
                raise VenueError(
                    codes.PARAMS_ERROR, "this venue holds one side of a symbol at a time"
                )
            reduce_only = reduce_only or reduces
        if reduce_only:
            if held == 0 or (held > 0) == (side == "Buy"):
                raise self.error("reduce_only", category)
            base_qty = min(base_qty, abs(held))  # Bybit trims a reduce-only order to the position
        if not reduce_only and base_qty * price < inst.min_notional:
            raise self.error("notional_too_small", category)
        return Order(
            order_id="",
            link_id=link_id,
            category=category,
            symbol=inst.symbol,
            side=side,
            qty=base_qty if reduce_only else qty,
            base_qty=base_qty,
            reduce_only=reduce_only,
            market_unit=unit,
            created_ms=0,
            position_idx=idx,
        )

    def place(self, order: Order, fill: Fill, now_ms: int) -> Order:
        """Accept a checked order: hold what it needs, fill it as ``fill`` says."""
        if order.link_id and self.find(order.category, link_id=order.link_id) is not None:
            raise self.error("duplicate_link_id", order.category)
        inst = self.instrument(order.category, order.symbol)
        price = self._fill_price(self.price(order.category, order.symbol), order.side)
        coin, need = self._needs(inst, order, order.base_qty, price)
        if need > self.available(coin):
            raise self.error("insufficient_balance", order.category)
        order.order_id = f"{self.order_id_prefix}{next(self._ids)}"
        order.created_ms = order.updated_ms = now_ms
        order.lock_coin, order.lock = coin, need
        self.locked[coin] = self.locked.get(coin, ZERO) + need
        self.orders[order.order_id] = order
        if order.link_id:
            self._by_link[order.category, order.link_id] = order.order_id
        if fill.qty is not None:
            part = min(fill.qty, order.base_qty)
        else:
            part = (order.base_qty * fill.ratio).quantize(inst.qty_step, ROUND_DOWN)
        held = fill.hold_reads > 0 or fill.hold_ms > 0
        if part >= order.base_qty and not held:
            self._fill(order, order.base_qty, now_ms)
            self._finish(order, now_ms)
            return order
        if part < order.base_qty:
            if part > 0:
                self._fill(order, part, now_ms)
            order.rest = "cancel"
        if held:
            order.hold_reads = fill.hold_reads
            order.hold_until_ms = now_ms + fill.hold_ms if fill.hold_ms else None
            if order.hold_until_ms is not None:
                self._timed.add(order.order_id)
        else:
            self._finish(order, now_ms)
        return order

    def _needs(
        self, inst: Instrument, order: Order, qty: Decimal, price: Decimal
    ) -> tuple[str, Decimal]:
        """The coin and amount an order holds back while it works."""
        if order.category == "spot":
            return (inst.quote, qty * price) if order.side == "Buy" else (inst.base, qty)
        position = self.positions.get(order.symbol)
        held = position.size if position else ZERO
        signed = qty if order.side == "Buy" else -qty
        increase = max(qty - abs(held), ZERO) if held * signed < 0 else qty
        if order.reduce_only:
            increase = ZERO
        fee = qty * price * self.perp_fee_rate
        return SETTLE_COIN, increase * price / self.leverage_of(order.symbol) + fee

    def _fill_price(self, price: Decimal, side: str) -> Decimal:
        return price * (1 + self.slippage) if side == "Buy" else price * (1 - self.slippage)

    def _fill(
        self,
        order: Order,
        qty: Decimal,
        now_ms: int,
        *,
        exec_type: str = "Trade",
        price: Decimal | None = None,
    ) -> None:
        inst = self.instrument(order.category, order.symbol)
        if price is None:
            price = self._fill_price(self.price(order.category, order.symbol), order.side)
        value = qty * price
        if order.category == "spot":
            if order.side == "Buy":
                fee, fee_coin, rate = qty * self.spot_fee_rate, inst.base, self.spot_fee_rate
                self._add(inst.base, qty - fee)
                self._add(inst.quote, -value)
            else:
                fee, fee_coin, rate = value * self.spot_fee_rate, inst.quote, self.spot_fee_rate
                self._add(inst.base, -qty)
                self._add(inst.quote, value - fee)
        else:
            # Auto-deleveraging charges no fee (Bybit); a trade or a liquidation the taker's.
            rate = ZERO if exec_type == "AdlTrade" else self.perp_fee_rate
            fee, fee_coin = value * rate, SETTLE_COIN
            self._trade_position(order.symbol, qty if order.side == "Buy" else -qty, price, now_ms)
            self._add(SETTLE_COIN, -fee)
            self.positions[order.symbol].realised -= fee
        order.filled += qty
        order.value += value
        order.fee += fee
        order.fee_coin = fee_coin
        order.updated_ms = now_ms
        order.status = "PartiallyFilled"
        self.executions.append(
            Execution(
                exec_id=f"exec-{len(self.executions) + 1}",
                exec_type=exec_type,
                category=order.category,
                symbol=order.symbol,
                side=order.side,
                price=price,
                qty=qty,
                fee=fee,
                fee_rate=rate,
                fee_coin=fee_coin,
                time_ms=self.shown_ms(now_ms),
                order_id=order.order_id,
                link_id=order.link_id,
            )
        )

    def outside_trade(
        self,
        category: str,
        symbol: str,
        side: str,
        qty: Decimal,
        now_ms: int,
        *,
        exec_type: str = "Trade",
        price: Decimal | None = None,
    ) -> Execution:
        """A trade the run did not make: the owner's own order on the website (``Trade``),
        auto-deleveraging (``AdlTrade``) or a liquidation (``BustTrade``) of the perp. It
        fills at once, at ``price`` or the market's, with an order id and no orderLinkId,
        and is listed among the executions as Bybit lists it."""
        inst = self.instrument(category, symbol)
        if side not in ("Buy", "Sell") or not qty.is_finite() or qty <= 0:
            raise VenueError(codes.PARAMS_ERROR, "params error: side or qty invalid")
        if exec_type not in ("Trade", "AdlTrade", "BustTrade"):
            raise VenueError(codes.PARAMS_ERROR, f"params error: execType {exec_type!r}")
        held = self.positions.get(symbol)
        if category == "linear" and exec_type != "Trade":
            # ADL and liquidation only ever reduce a position, never beyond it.
            if held is None or held.size == 0 or (held.size > 0) == (side == "Buy"):
                raise VenueError(codes.PARAMS_ERROR, f"{exec_type}: no position to reduce")
            qty = min(qty, abs(held.size))
        if category == "spot" and side == "Sell" and qty > self.available(inst.base):
            raise self.error("insufficient_balance", category)
        order = Order(
            order_id=f"{self.order_id_prefix}{next(self._ids)}",
            link_id="",
            category=category,
            symbol=symbol,
            side=side,
            qty=qty,
            base_qty=qty,
            reduce_only=exec_type != "Trade",
            market_unit="baseCoin" if category == "spot" else "",
            created_ms=now_ms,
        )
        self.orders[order.order_id] = order
        self._fill(order, qty, now_ms, exec_type=exec_type, price=price)
        order.status, order.done_ms = "Filled", now_ms
        return self.executions[-1]

    def _trade_position(self, symbol: str, signed: Decimal, price: Decimal, now_ms: int) -> None:
        pos = self.positions.setdefault(symbol, Position(symbol, created_ms=now_ms))
        if pos.size == 0:
            pos.created_ms = now_ms
        if pos.size * signed >= 0:  # opens or increases
            total = pos.size + signed
            pos.avg_price = (abs(pos.size) * pos.avg_price + abs(signed) * price) / abs(total)
            pos.size = total
        else:
            closed = min(abs(signed), abs(pos.size))
            direction = 1 if pos.size > 0 else -1
            pnl = (price - pos.avg_price) * closed * direction
            self._add(SETTLE_COIN, pnl)
            pos.realised += pnl
            pos.size += signed
            if pos.size == 0:
                pos.avg_price = ZERO
            elif (pos.size > 0) != (direction > 0):  # flipped: the rest opened at this price
                pos.avg_price = price
        pos.updated_ms = now_ms

    def _add(self, coin: str, amount: Decimal) -> None:
        self.wallet[coin] = self.wallet.get(coin, ZERO) + amount

    def _release(self, order: Order) -> None:
        if order.lock:
            self.locked[order.lock_coin] = self.locked.get(order.lock_coin, ZERO) - order.lock
            order.lock = ZERO

    def _finish(self, order: Order, now_ms: int) -> None:
        """Close a working order: what filled stays, the rest is cancelled (IOC)."""
        self._release(order)
        if order.filled >= order.base_qty:
            order.status = "Filled"
        elif order.filled > 0:
            order.status = "PartiallyFilledCanceled"
        else:
            order.status = "Cancelled"
        order.hold_reads, order.hold_until_ms = 0, None
        self._timed.discard(order.order_id)
        order.updated_ms = order.done_ms = now_ms

    def _complete(self, order: Order, now_ms: int) -> None:
        """A held order's time has come: it fills its rest, or the rest is cancelled."""
        if order.rest == "fill":
            self._release(order)
            rest = order.base_qty - order.filled
            inst = self.instrument(order.category, order.symbol)
            price = self._fill_price(self.price(order.category, order.symbol), order.side)
            coin, need = self._needs(inst, order, rest, price)
            if rest > 0 and need <= self.available(coin):
                self._fill(order, rest, now_ms)
        self._finish(order, now_ms)

    def tick(self, now_ms: int) -> None:
        """Complete held orders whose time has passed."""
        for order_id in sorted(self._timed, key=lambda i: self.orders[i].created_ms):
            order = self.orders[order_id]
            if order.hold_until_ms is not None and now_ms >= order.hold_until_ms:
                self._complete(order, now_ms)

    def read(self, order: Order, now_ms: int) -> dict[str, Any]:
        """An order as a lookup returns it; counts the read towards completing it."""
        view = order.view()
        order.reads += 1
        if order.is_open and order.hold_reads > 0:
            order.hold_reads -= 1
            if order.hold_reads == 0 and order.hold_until_ms is None:
                self._complete(order, now_ms)
        return view

    def find(
        self, category: str, *, order_id: str | None = None, link_id: str | None = None
    ) -> Order | None:
        if order_id:
            found = self.orders.get(order_id)
            if found is not None and found.category == category:
                return found
        if link_id:
            by_link = self._by_link.get((category, link_id))
            return self.orders[by_link] if by_link is not None else None
        return None

    def cancel(
        self, category: str, order_id: str | None, link_id: str | None, now_ms: int
    ) -> Order:
        order = self.find(category, order_id=order_id, link_id=link_id)
        if order is None or not order.is_open:
            raise self.error("order_not_found", category)
        order.rest = "cancel"
        self._finish(order, now_ms)
        return order

    def set_leverage(self, symbol: str, value: Decimal) -> None:
        self.instrument("linear", symbol)
        if not value.is_finite() or value <= 0:
            raise VenueError(codes.PARAMS_ERROR, "params error: leverage invalid")
        if self.leverage_of(symbol) == value:
            raise VenueError(codes.LEVERAGE_NOT_MODIFIED, "leverage not modified")
        self.leverage[symbol] = value

    # -- funding --------------------------------------------------------------

    def settle_funding(
        self, symbol: str, rate: Decimal, time_ms: int, mark: Decimal | None = None
    ) -> Execution | None:
        """Settle one funding payment on the perp position, as a Funding execution.

        Bybit's sign: ``execFee = size x mark x rate`` with size positive for a long,
        so a positive fee is paid and a negative one received; a short collects a
        positive rate.
        """
        pos = self.positions.get(symbol)
        if pos is None or pos.size == 0:
            return None
        mark = mark if mark is not None else self.price("linear", symbol)
        fee = pos.size * mark * rate
        self._add(SETTLE_COIN, -fee)
        pos.realised -= fee
        execution = Execution(
            exec_id=f"exec-{len(self.executions) + 1}",
            exec_type="Funding",
            category="linear",
            symbol=symbol,
            side="Buy" if pos.size > 0 else "Sell",
            price=mark,
            qty=abs(pos.size),
            fee=fee,
            fee_rate=rate,
            fee_coin=SETTLE_COIN,
            time_ms=time_ms,
            mark=mark,
        )
        self.executions.append(execution)
        return execution

    # -- holdings -------------------------------------------------------------

    def unrealised(self, symbol: str | None = None) -> Decimal:
        total = ZERO
        for sym, pos in self.positions.items():
            if (symbol is None or sym == symbol) and pos.size and ("linear", sym) in self.prices:
                total += (self.prices["linear", sym] - pos.avg_price) * pos.size
        return total
