"""Every money movement of a run, in Decimal, and the identity they must satisfy.

    starting balance + funding - fees + price PnL = ending balance, exactly

Price PnL is the cash of every fill (a sale brings its notional in, a purchase
takes it out) plus, for anything still held at the end, what it is worth at the
last price. Slippage entries explain part of the price PnL; they are not added
again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from decimal import Decimal
from typing import Literal

import msgspec

from orchestrator.fills import fill_money, quote_of
from orchestrator.models import OUTSIDE_KINDS, ZERO, OrderResult, Side
from orchestrator.money import exact

Kind = Literal["fill", "fee", "funding", "slippage", "mark"]


class LedgerEntry(msgspec.Struct, frozen=True, gc=False):
    time_ms: int
    pair: str
    position_id: str
    kind: Kind
    symbol: str
    side: str  # buy / sell for fills; "" otherwise
    quantity: Decimal
    price: Decimal
    amount: Decimal  # effect on the account, in ``currency``: positive is money in
    currency: str
    note: str = ""


class Ledger:
    def __init__(
        self,
        starting: dict[str, Decimal],
        on_money: Callable[[str, Kind, Decimal], None] | None = None,
    ) -> None:
        """``on_money(position id, kind, amount)`` hears of every funding and mark entry
        as it is written: the position traces carry the same figures as the ledger."""
        self.starting = dict(starting)
        self.entries: list[LedgerEntry] = []
        self._on_money = on_money
        # totals(): every pair's sums, and how many entries they cover.
        self._sums: tuple[int, dict[str | None, list[Decimal]]] | None = None

    def record_order(
        self, time_ms: int, pair: str, position_id: str, result: OrderResult, reference: Decimal
    ) -> Decimal:
        """A fill, its fee and its slippage against ``reference`` (the quoted price).

        A fee charged in the coin traded (Bybit takes a spot buy's fee from the coins
        bought) is valued at the fill price: the fill row then shows the coins that
        actually moved (bought less the fee), so fill + fee is the cash paid and the
        fill rows add up to what is held. Returns the fill's cash effect net of its fee.
        """
        if result.filled_qty == 0 or result.avg_price is None:
            return ZERO
        qty, price = result.filled_qty, result.avg_price
        buy = result.side is Side.BUY
        quote = _quote(result.symbol)
        note = result.client_order_id
        moved, cash, fee_amount = fill_money(result)
        if moved != qty:
            note += f" (filled {qty}, fee {result.fee} {result.fee_currency})"
        if result.exec_type:  # not the run's: what it was, and the venue's execution
            what = OUTSIDE_KINDS.get(result.exec_type, result.exec_type)
            note += f" ({what}, execution {result.order_id})"
        fill = LedgerEntry(
            time_ms=time_ms,
            pair=pair,
            position_id=position_id,
            kind="fill",
            symbol=result.symbol,
            side=result.side.value,
            quantity=moved,
            price=price,
            amount=cash,
            currency=quote,
            note=note,
        )
        fee = msgspec.structs.replace(
            fill, kind="fee", side="", quantity=qty, amount=fee_amount, note=result.client_order_id
        )
        # What the taker paid beyond the quoted price: (fill - quote) for a buy.
        cost = (price - reference) * qty if buy else (reference - price) * qty
        slippage = msgspec.structs.replace(
            fill,
            kind="slippage",
            side="",
            quantity=qty,
            price=reference,
            amount=-cost,
            note=result.client_order_id,
        )
        self.entries += (fill, fee, slippage)
        return fill.amount + fee.amount

    def record_funding(
        self,
        time_ms: int,
        pair: str,
        position_id: str,
        symbol: str,
        quantity: Decimal,
        price: Decimal,
        rate: Decimal,
        amount: Decimal,
    ) -> Decimal:
        self.entries.append(
            LedgerEntry(
                time_ms=time_ms,
                pair=pair,
                position_id=position_id,
                kind="funding",
                symbol=symbol,
                side="",
                quantity=quantity,
                price=price,
                amount=amount,
                currency=_quote(symbol),
                note=f"rate {rate}",
            )
        )
        if self._on_money is not None:
            self._on_money(position_id, "funding", amount)
        return amount

    def record_mark(
        self, time_ms: int, pair: str, position_id: str, symbol: str, held: Decimal, price: Decimal
    ) -> None:
        """Value of ``held`` (negative for a short) at the last price, for what is still open."""
        if self._on_money is not None:
            self._on_money(position_id, "mark", held * price)
        self.entries.append(
            LedgerEntry(
                time_ms=time_ms,
                pair=pair,
                position_id=position_id,
                kind="mark",
                symbol=symbol,
                side="",
                quantity=held,
                price=price,
                amount=held * price,
                currency=_quote(symbol),
                note="still held at the end, valued at the last price",
            )
        )

    def totals(self, pair: str | None = None) -> dict[str, Decimal]:
        """Sums by kind (fee and slippage as positive costs), for one pair or all."""
        with exact():
            return self._totals(pair)

    def _totals(self, pair: str | None) -> dict[str, Decimal]:
        # Every pair's sums in one pass, kept until an entry is added: the figures ask
        # for each pair in turn (hundreds under pairs: auto), then for all.
        if self._sums is None or self._sums[0] != len(self.entries):
            by_pair: dict[str | None, list[Decimal]] = {None: [ZERO, ZERO, ZERO, ZERO]}
            every = by_pair[None]
            for e in self.entries:
                sums = by_pair.get(e.pair)
                if sums is None:
                    sums = by_pair[e.pair] = [ZERO, ZERO, ZERO, ZERO]
                slot = _SLOT.get(e.kind, 3)  # fill or mark: price PnL
                sums[slot] += e.amount
                every[slot] += e.amount
            self._sums = (len(self.entries), by_pair)
        funding, fees, slippage, price = self._sums[1].get(pair) or (ZERO, ZERO, ZERO, ZERO)
        # Fees and slippage are entered as negative amounts: as costs, positive.
        return {
            "funding": funding,
            "fees": -fees,
            "slippage": -slippage,
            "price_pnl": price,
            "net_pnl": funding + fees + price,
        }


_SLOT = {"funding": 0, "fee": 1, "slippage": 2}  # the rest (fill, mark): 3
_quote = functools.cache(quote_of)  # a handful of symbols, asked at every settlement and fill
