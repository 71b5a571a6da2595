"""What one order's fill moves in money, in the quote currency.

The ledger writes it and the position traces sum it: one formula, so the figures
of ``positions.csv``, the table and ``orchestrator traces`` cannot drift apart.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from orchestrator.models import ZERO, OrderResult, Position, Side


def quote_of(symbol: str) -> str:
    """Quote currency of a ccxt unified symbol: BTC/USDT -> USDT, BTC/USDT:USDT -> USDT."""
    return symbol.split("/")[1].split(":")[0]


def fill_money(result: OrderResult) -> tuple[Decimal, Decimal, Decimal]:
    """(coins moved, the fill's cash, the fee's cash): positive is money in.

    A fee charged in the coin traded (Bybit takes a spot buy's fee from the coins
    bought) is valued at the fill price, and the coins moved are the filled quantity
    less it: fill + fee is then the cash paid. Nothing filled moves nothing."""
    if result.filled_qty == 0 or result.avg_price is None:
        return ZERO, ZERO, ZERO
    qty, price = result.filled_qty, result.avg_price
    buy = result.side is Side.BUY
    moved, fee = qty, -result.fee
    if result.fee and result.fee_currency != quote_of(result.symbol):
        moved = qty - result.fee if buy else qty + result.fee
        fee = -result.fee * price
    return moved, (-moved * price if buy else moved * price), fee


def orders_money(position: Position) -> tuple[Decimal, Decimal]:
    """(fees paid, cash of the fills) over every order of ``position``, rollbacks and
    failed attempts included: fees as a positive cost."""
    fees = cash = ZERO
    for result in position.orders:
        _, fill, fee = fill_money(result)
        cash += fill
        fees -= fee
    return fees, cash


def exit_price(position: Position, symbol: str, side: Side) -> Decimal | None:
    """The average price of ``position``'s fills on ``symbol`` going ``side`` (its
    exit: a spot sell, a perp buy; a rollback's unwind included), or None."""
    qty = value = ZERO
    for result in position.orders:
        if result.symbol == symbol and result.side is side and result.avg_price is not None:
            qty += result.filled_qty
            value += result.filled_qty * result.avg_price
    return value / qty if qty else None


def exit_prices(position: Position) -> tuple[Decimal | None, Decimal | None]:
    """(spot, perp) exit prices of ``position``."""
    return (
        exit_price(position, position.spot_symbol, Side.SELL),
        exit_price(position, position.perp_symbol, Side.BUY),
    )


HOUR_US = 3_600_000_000
# A duration's hours that do not end (a ninth of a microsecond's worth: a live
# position's times carry microseconds, a minute's data 1/60 h) are given to 1e-9 h
# (3.6 us), not to the 200 digits of the money context.
HOUR_PLACES = Decimal("1e-9")


def hours_of(held: timedelta) -> Decimal:
    """``held`` in hours: exact when the quotient ends, else to the nearest 1e-9 h."""
    us = held // timedelta(microseconds=1)
    hours = Decimal(us) / HOUR_US
    # us / (2**10 * 5**8 * 9) ends exactly when 9 divides us.
    return hours if us % 9 == 0 else hours.quantize(HOUR_PLACES)


def hours_held(position: Position, end: datetime | None) -> Decimal | None:
    """Market hours from the open to the close (or ``end`` when still held)."""
    if position.opened_at is None:
        return None
    closed = position.closed_at or end
    if closed is None:
        return None
    return hours_of(closed - position.opened_at)
