"""The records that cross module boundaries. Money and quantities are Decimal."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

import msgspec

from orchestrator.exceptions import InvalidOrderError

ZERO = Decimal(0)
# Bybit's orderLinkId: at most 36 characters; ccxt does not percent-escape GET
# queries, so only characters that need no escaping.
CLIENT_ORDER_ID = re.compile(r"^[A-Za-z0-9_-]{1,36}$")


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class Category(StrEnum):
    SPOT = "spot"
    LINEAR = "linear"  # USDT-margined perpetual


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"


class OrderStatus(StrEnum):
    OPEN = "open"  # still working on the venue
    FILLED = "filled"
    PARTIALLY_FILLED = "partially_filled"  # done, the rest cancelled (IOC market order)
    CANCELLED = "cancelled"  # done, nothing filled


def require_positive(name: str, value: Decimal) -> None:
    if not value.is_finite() or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value}")


class Instrument(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    symbol: str  # ccxt unified symbol: "BTC/USDT" or "BTC/USDT:USDT"
    category: Category
    base: str
    quote: str
    qty_step: Decimal
    min_qty: Decimal
    min_notional: Decimal
    price_tick: Decimal
    # A perp's hours between funding settlements (Bybit's fundingInterval: 1, 2, 4 or 8
    # h); the strategy annualises with it.
    funding_interval_hours: int = 8

    def __post_init__(self) -> None:
        # msgspec checks types only when decoding: a constructor given the text "spot"
        # would keep a str that compares unequal by identity everywhere a Category is
        # expected, so the text is turned into the enum here (or refused by name).
        if not isinstance(self.category, Category):
            words = " or ".join(repr(c.value) for c in Category)
            try:
                category = Category(self.category)
            except ValueError:
                raise ValueError(
                    f"category must be {words} (orchestrator.Category), got {self.category!r}"
                ) from None
            msgspec.structs.force_setattr(self, "category", category)
        for name in ("qty_step", "min_qty", "price_tick"):
            require_positive(name, getattr(self, name))
        if not self.min_notional.is_finite() or self.min_notional < 0:
            raise ValueError(f"min_notional must be >= 0, got {self.min_notional}")


class OrderRequest(msgspec.Struct, frozen=True):
    symbol: str
    side: Side
    quantity: Decimal
    category: Category
    client_order_id: str
    order_type: OrderType = OrderType.MARKET
    price: Decimal | None = None
    reduce_only: bool = False

    def __post_init__(self) -> None:
        if not self.quantity.is_finite() or self.quantity <= 0:
            raise InvalidOrderError(
                f"{self.symbol}: order quantity must be positive, got {self.quantity}"
            )
        if not CLIENT_ORDER_ID.match(self.client_order_id):
            raise InvalidOrderError(
                f"client order id {self.client_order_id!r}: 1-36 characters of A-Z a-z 0-9 _ -"
            )
        if self.order_type is OrderType.LIMIT and (
            self.price is None or not self.price.is_finite() or self.price <= 0
        ):
            raise InvalidOrderError(f"{self.symbol}: a limit order needs a positive price")


class OrderResult(msgspec.Struct, frozen=True):
    client_order_id: str
    order_id: str  # the venue's id (paper_... on paper)
    symbol: str
    side: Side
    category: Category
    status: OrderStatus
    requested_qty: Decimal
    filled_qty: Decimal
    avg_price: Decimal | None  # None when nothing filled
    fee: Decimal
    fee_currency: str
    is_simulated: bool
    # A trade the run did not make: the venue's execType (Trade by hand, AdlTrade, BustTrade).
    exec_type: str = ""

    @property
    def is_done(self) -> bool:
        return self.status is not OrderStatus.OPEN


# What each kind of trade the run did not make is, in words.
UNEXPLAINED = "Unexplained"  # no execType of the venue's: see OUTSIDE_KINDS
OUTSIDE_KINDS: dict[str, str] = {
    "Trade": "a trade the run did not make",
    "AdlTrade": "auto-deleveraging",
    "BustTrade": "a liquidation",
    # Not the venue's: the short the venue shows less of with no execution to say why
    # (live/run.py), taken in at the last price.
    UNEXPLAINED: "perp short gone from the venue with no execution found (taken in at the "
    "last price: check the venue)",
}


class Holdings(msgspec.Struct, frozen=True):
    """What the venue shows the account holds of one pair: the spot coin available to
    sell, and the perp's short (contracts; 0 when flat or long)."""

    spot: Decimal
    perp_short: Decimal


class DeltaStatus(msgspec.Struct, frozen=True):
    spot_qty: Decimal
    perp_qty: Decimal
    drift_pct: Decimal  # |spot - perp| / max(spot, perp), a fraction
    tolerance: Decimal
    is_within_tolerance: bool
    position_id: str | None = None


class Position(msgspec.Struct, kw_only=True):
    """One hedged position; its ``state`` is written by its PositionMachine."""

    id: str
    spot_symbol: str
    perp_symbol: str
    state: str | None = None
    quantity: Decimal = ZERO  # the hedge size both legs were sent for
    # What the position holds right now, as the fills reported them: spot in
    # base coin (net of fees charged in it), perp as contracts short.
    spot_qty: Decimal = ZERO
    perp_qty: Decimal = ZERO
    spot_entry_price: Decimal | None = None
    perp_entry_price: Decimal | None = None
    entry_fees: Decimal = ZERO  # in the quote currency
    exit_fees: Decimal = ZERO
    # Every client order id issued for this position, recorded before the
    # request leaves, and every order result that came back.
    client_order_ids: list[str] = msgspec.field(default_factory=list)
    orders: list[OrderResult] = msgspec.field(default_factory=list)
    reason: str | None = None  # why it was rejected, unwound or needs attention
    created_at: datetime | None = None
    opened_at: datetime | None = None
    closed_at: datetime | None = None

    @property
    def is_flat(self) -> bool:
        return self.spot_qty == 0 and self.perp_qty == 0
