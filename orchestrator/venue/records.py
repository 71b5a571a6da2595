"""What the venue's books (state.py) hold: instruments, orders, their fills, netted
perp positions and executions, each with its Bybit v5 JSON view (numbers as strings).
Pure: no I/O and no clock."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

ZERO = Decimal(0)


OPEN_STATUSES = frozenset({"New", "PartiallyFilled"})


SETTLE_COIN = "USDT"


def num(value: Decimal) -> str:
    """A Decimal as Bybit writes numbers: plain digits, never an exponent."""
    return format(value, "f")


@dataclass(frozen=True)
class Instrument:
    category: str  # "spot" | "linear"
    symbol: str  # the venue's id, e.g. BTCUSDT
    base: str
    quote: str
    qty_step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal
    raw: Mapping[str, Any]  # the instruments-info entry, served as it is

    @classmethod
    def from_entry(cls, category: str, entry: Mapping[str, Any]) -> Instrument:
        lot = entry["lotSizeFilter"]
        spot = category == "spot"
        max_qty = lot.get("maxMktOrderQty") or lot.get("maxOrderQty") or "1e12"
        return cls(
            category=category,
            symbol=entry["symbol"],
            base=entry["baseCoin"],
            quote=entry["quoteCoin"],
            qty_step=Decimal(lot["basePrecision" if spot else "qtyStep"]),
            min_qty=Decimal(lot["minOrderQty"]),
            max_qty=Decimal(max_qty),
            min_notional=Decimal(lot.get("minOrderAmt" if spot else "minNotionalValue") or 0),
            raw=entry,
        )


@dataclass(frozen=True)
class Fill:
    """How an accepted order is to fill: now, in part, or later."""

    ratio: Decimal = Decimal(1)  # share of the quantity that fills (rounded down to the step)
    qty: Decimal | None = None  # or this much of it (at most the order's quantity)
    hold_reads: int = 0  # reads that show it still working before it completes
    hold_ms: int = 0  # or milliseconds


@dataclass
class Order:
    order_id: str
    link_id: str
    category: str
    symbol: str
    side: str  # "Buy" | "Sell"
    qty: Decimal  # as sent: in the quote coin for a spot buy by quote amount
    base_qty: Decimal  # what fills at most, in the base coin
    reduce_only: bool
    market_unit: str
    created_ms: int
    position_idx: int = 0  # linear: 0 one-way; hedge mode 1 (long side) or 2 (short side)
    status: str = "New"
    filled: Decimal = ZERO
    value: Decimal = ZERO
    fee: Decimal = ZERO
    fee_coin: str = ""
    updated_ms: int = 0
    done_ms: int | None = None
    reads: int = 0  # how often a lookup returned it
    # Still working: it completes after this many more reads, or at this time.
    hold_reads: int = 0
    hold_until_ms: int | None = None
    rest: Literal["fill", "cancel"] = "fill"  # what completing does to the unfilled rest
    lock_coin: str = ""
    lock: Decimal = ZERO

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def raw(self) -> dict[str, Any]:
        """Its v5 order-list entry, as a lookup would return it now."""
        return self.view()

    def view(self) -> dict[str, Any]:
        avg = self.value / self.filled if self.filled else None
        leaves = self.base_qty - self.filled if self.is_open else ZERO
        raw: dict[str, Any] = {
            "orderId": self.order_id,
            "orderLinkId": self.link_id,
            "symbol": self.symbol,
            "side": self.side,
            "orderType": "Market",
            "orderStatus": self.status,
            "price": "0",
            "qty": num(self.qty),
            "cumExecQty": num(self.filled),
            "cumExecValue": num(self.value),
            "avgPrice": num(avg) if avg is not None else "",
            "cumExecFee": num(self.fee),
            "cumFeeDetail": {self.fee_coin: num(self.fee)} if self.filled else {},
            "leavesQty": num(leaves),
            "leavesValue": "0",
            "timeInForce": "IOC",
            "reduceOnly": self.reduce_only,
            "cancelType": "UNKNOWN",
            "rejectReason": "EC_NoError",
            "positionIdx": self.position_idx,
            "isLeverage": "",
            "createdTime": str(self.created_ms),
            "updatedTime": str(self.updated_ms or self.created_ms),
        }
        if self.category == "spot":
            raw["marketUnit"] = self.market_unit
        else:
            raw["tpslMode"] = ""  # ccxt tells contract orders from spot ones by this key
        return raw


@dataclass
class Position:
    symbol: str
    size: Decimal = ZERO  # signed: long positive
    avg_price: Decimal = ZERO
    realised: Decimal = ZERO  # cumulative: closed PnL - fees - funding paid
    created_ms: int = 0
    updated_ms: int = 0


@dataclass
class Execution:
    exec_id: str
    exec_type: str  # "Trade" | "Funding"
    category: str
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    fee: Decimal  # Bybit's sign: positive paid, negative received
    fee_rate: Decimal
    fee_coin: str
    time_ms: int
    order_id: str = ""
    link_id: str = ""
    mark: Decimal = ZERO

    def view(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "execId": self.exec_id,
            "execType": self.exec_type,
            "orderId": self.order_id,
            "orderLinkId": self.link_id,
            "orderType": "Market" if self.exec_type == "Trade" else "UNKNOWN",
            "side": self.side,
            "execPrice": num(self.price),
            "execQty": num(self.qty),
            "execValue": num(self.qty * self.price),
            "execFee": num(self.fee),
            "feeRate": num(self.fee_rate),
            "feeCurrency": self.fee_coin,
            "markPrice": num(self.mark or self.price),
            "isMaker": False,
            "execTime": str(self.time_ms),
            "category": self.category,
        }
