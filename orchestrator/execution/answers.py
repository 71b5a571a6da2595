"""How the LiveExecutor (live.py) reads Bybit's answers through ccxt: numbers from the
venue's own text, retCodes, whether a failed request may still have placed the order,
an order's fee from its executions, trades the run did not make, and holdings. An
answer that is read but cannot be used raises ``Unusable``."""

from __future__ import annotations

import decimal
import re
from collections.abc import Collection
from decimal import Decimal
from typing import Any

import ccxt

from orchestrator.models import (
    OUTSIDE_KINDS,
    UNEXPLAINED,
    ZERO,
    Category,
    Holdings,
    Instrument,
    OrderResult,
    OrderStatus,
    Side,
)

# ccxt's unified statuses of an order that is done (Bybit's Filled, PartiallyFilledCanceled,
# Cancelled, Deactivated, Rejected), and of one that may still fill. ccxt passes a
# status word it does not know through as it came: such an order is unusable.
DONE = frozenset({"closed", "canceled", "expired", "rejected"})


STATUSES = DONE | {"open"}


# What ccxt's own parsing raises on an answer it cannot read (a number that is a word,
# a list where it expects an object...): not ccxt errors, but they mean the same.
PARSE_ERRORS: tuple[type[Exception], ...] = (
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
DUPLICATE_CLIENT_ID = frozenset({"110072", "170141"})


SYSTEM_ERROR = "10016"


# ccxt's exception message carries Bybit's JSON body: 'bybit {"retCode":110007,...}'.
_RET_CODE = re.compile(r'"retCode"\s*:\s*"?(\d+)')


class Unusable(Exception):
    """The venue's answer was read, but what it says cannot be used (an order without an
    id, a number that is NaN, a status word Bybit never sends...)."""


# An answer that was read but cannot be used, or that ccxt could not parse.
UNREADABLE: tuple[type[Exception], ...] = (Unusable, *PARSE_ERRORS)


def decimal_of(value: Any, name: str, *texts: Any) -> Decimal | None:
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
        raise Unusable(f"{name} {value!r} is not a number")
    try:
        number = Decimal(str(value))
    except decimal.InvalidOperation:
        raise Unusable(f"{name} {value!r} is not a number") from None
    if not number.is_finite():
        raise Unusable(f"{name} {value!r} is not a number")
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


def ret_code(exc: Exception) -> str | None:
    match = _RET_CODE.search(str(exc))
    return match.group(1) if match else None


def may_have_happened(exc: Exception) -> bool:
    """Whether a ccxt error leaves open that the request was carried out: a network
    error or an answer that could not be read (``ccxt.OperationFailed``), Bybit's
    "System error" (10016), or ccxt's catch-all ``ExchangeError`` naming no refusal
    (no retCode, or retCode 0: an answer ccxt could not read, or a broken transfer)."""
    if isinstance(exc, ccxt.OperationFailed):
        return True
    code = ret_code(exc)
    return code == SYSTEM_ERROR or (type(exc) is ccxt.ExchangeError and code in (None, "0"))


def category_of(market: Any) -> Category | None:
    if market["spot"]:
        return Category.SPOT
    if market["swap"] and market["linear"]:
        return Category.LINEAR
    return None


OUTSIDE_TYPES = frozenset(OUTSIDE_KINDS) - {UNEXPLAINED}  # what the venue lists


def outside_trade(trade: Any, inst: Instrument, known: Collection[str]) -> OrderResult | None:
    """One execution as a filled order, unless it is the run's own (or known) or not a
    trade; Unusable where it cannot be read."""
    info = trade.get("info") if isinstance(trade, dict) else None
    if not isinstance(info, dict):
        raise Unusable(f"an execution without its venue record: {trade!r:.200}")
    exec_id, order_id = str(info.get("execId") or ""), str(info.get("orderId") or "")
    if not exec_id or exec_id in known or order_id in known:
        return None
    kind = str(info.get("execType") or "Trade")
    if kind not in OUTSIDE_TYPES:
        return None
    side = str(info.get("side", "")).lower()
    qty = decimal_of(info.get("execQty"), "execQty")
    price = decimal_of(info.get("execPrice"), "execPrice")
    fee = decimal_of(info.get("execFee"), "execFee") or ZERO
    if side not in ("buy", "sell") or not qty or qty <= 0 or price is None or price <= 0:
        raise Unusable(f"execution {exec_id}: {side} {qty} at {price}")
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


def executions_fee(trades: Any, result: OrderResult) -> tuple[Decimal, str]:
    """The fee of ``result``'s fill from its executions (Bybit's ``execFee``, positive
    when paid, in ``feeCurrency``); Unusable until they account for the whole fill (the
    execution list lags the order) or when they cannot be read."""
    where = f"order {result.order_id}"
    if not isinstance(trades, list):
        raise Unusable(f"the executions of {where} are a {type(trades).__name__}, not a list")
    qty, fees = ZERO, dict[str, Decimal]()
    for trade in trades:
        info = trade.get("info") if isinstance(trade, dict) else None
        if not isinstance(info, dict) or info.get("orderId") != result.order_id:
            raise Unusable(f"an execution listed for {where} is not one of it: {trade!r}")
        if info.get("execType", "Trade") != "Trade":
            continue
        qty += decimal_of(info.get("execQty"), "execQty") or ZERO
        fee = decimal_of(info.get("execFee"), "execFee")
        # Bybit names the coin (feeCurrency); ccxt infers it where the answer does not.
        coin = info.get("feeCurrency") or (trade.get("fee") or {}).get("currency")
        if fee is None or not isinstance(coin, str) or not coin:
            raise Unusable(f"an execution of {where} has fee {fee} in {coin!r}")
        fees[coin] = fees.get(coin, ZERO) + fee
    if qty != result.filled_qty:
        raise Unusable(
            f"the venue's executions of {where} show {qty} of the {result.filled_qty} filled: "
            "its fee is not known yet"
        )
    if len(fees) != 1:
        raise Unusable(f"the executions of {where} pay fees in {sorted(fees)}")
    ((coin, fee),) = fees.items()
    return fee, coin


def holdings_of(balance: Any, positions: Any, spot: Instrument, perp: Instrument) -> Holdings:
    """The spot coin free to sell and the perp's short from ccxt's balance and positions;
    Unusable where they cannot be read (a coin the wallet does not list is none held)."""
    if not isinstance(balance, dict):
        raise Unusable(f"the balance is a {type(balance).__name__}")
    coin = balance.get(spot.base)
    held = ZERO
    if coin is not None:
        if not isinstance(coin, dict):
            raise Unusable(f"the {spot.base} balance is {coin!r}")
        free = decimal_of(coin.get("free"), f"{spot.base} free")
        total = decimal_of(coin.get("total"), f"{spot.base} total")
        held = free if free is not None else total if total is not None else ZERO
        if held < 0:
            raise Unusable(f"the wallet holds {held} {spot.base}")
    if not isinstance(positions, list):
        raise Unusable(f"the positions are a {type(positions).__name__}, not a list")
    short = ZERO
    for position in positions:
        if not isinstance(position, dict) or not isinstance(position.get("symbol"), str):
            raise Unusable(f"a position without a symbol: {position!r}")
        if position["symbol"] != perp.symbol:
            continue
        side = position.get("side")
        contracts = decimal_of(position.get("contracts"), f"{perp.symbol} contracts")
        if side not in ("long", "short", None) or (side is not None and contracts is None):
            raise Unusable(f"{perp.symbol} position: side {side!r}, {contracts} contracts")
        if contracts is not None and contracts < 0:
            raise Unusable(f"{perp.symbol} position of {contracts} contracts")
        if side == "short" and contracts is not None:
            short += contracts
    return Holdings(spot=held, perp_short=short)
