"""Bybit v5 retCodes the venue answers with, per category where Bybit's differ.

Sources:
- Bybit's error table, https://bybit-exchange.github.io/docs/v5/error (the
  ``bybit-exchange/docs`` repository, ``docs/v5/error.mdx``): 10001-10006, 10016,
  110001, 110007, 110017, 110043, 110072 ("OrderLinkedID is duplicate") and the
  spot trade codes 170121, 170131, 170135-170137, 170140, 170141 ("Duplicate
  clientOrderId"), 170213.
- 110094 ("order notional value below the lower limit") is newer than that table;
  it is taken from ccxt 4.5's bybit exception map.
- Messages are Bybit's own text as ccxt's exception map and public bug reports
  quote what the live API sends (e.g. 110007 "ab not enough for new order",
  10016 "System error. Please try again later.", 10001 "The number of contracts
  exceeds maximum limit allowed: too large, ...").
- The timestamp rule of 10002 is Bybit's integration guide
  (https://bybit-exchange.github.io/docs/v5/guide):
  ``server_time - recv_window <= timestamp < server_time + 1000``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

Category = Literal["spot", "linear"]

OK: Final = 0
PARAMS_ERROR: Final = 10001
TIMESTAMP_OUT_OF_WINDOW: Final = 10002
INVALID_API_KEY: Final = 10003
INVALID_SIGN: Final = 10004
RATE_LIMIT: Final = 10006
SYSTEM_ERROR: Final = 10016
LEVERAGE_NOT_MODIFIED: Final = 110043

TIMESTAMP_MSG: Final = (
    "invalid request, please check your server timestamp or recv_window param. "
    "req_timestamp[{ts}],server_timestamp[{now}],recv_window[{window}]"
)

# Named errors a fault rule or the book can answer with: name -> category -> (code, message).
ERRORS: Final[dict[str, dict[str, tuple[int, str]]]] = {
    "insufficient_balance": {
        "spot": (170131, "Balance insufficient"),
        "linear": (110007, "ab not enough for new order"),
    },
    "duplicate_link_id": {
        "spot": (170141, "Duplicate clientOrderId"),
        "linear": (110072, "OrderLinkedID is duplicate"),
    },
    "order_not_found": {
        "spot": (170213, "Order does not exist."),
        "linear": (110001, "order not exists or too late to cancel"),
    },
    "qty_too_small": {
        "spot": (170136, "Order quantity lower than the minimum."),
        "linear": (10001, "The number of contracts exceeds minimum limit allowed"),
    },
    "qty_too_large": {
        "spot": (170135, "Order quantity too large."),
        "linear": (
            10001,
            "The number of contracts exceeds maximum limit allowed: too large",
        ),
    },
    "qty_step": {
        "spot": (170137, "Order volume decimal too long"),
        "linear": (10001, "Qty invalid: not a multiple of qtyStep"),
    },
    "notional_too_small": {
        "spot": (170140, "Transaction amount lower than the minimum."),
        "linear": (110094, "Order does not meet minimum order value 5USDT"),
    },
    "invalid_symbol": {
        "spot": (170121, "Invalid symbol."),
        "linear": (10001, "params error: symbol invalid"),
    },
    "reduce_only": {
        "spot": (10001, "reduceOnly is not supported for spot"),
        "linear": (110017, "current position is zero, cannot fix reduce-only order qty"),
    },
    "params": {
        "spot": (10001, "params error"),
        "linear": (10001, "params error"),
    },
    "system_error": {
        "spot": (SYSTEM_ERROR, "System error. Please try again later."),
        "linear": (SYSTEM_ERROR, "System error. Please try again later."),
    },
    # ccxt matches this text broadly and raises RequestTimeout instead of ExchangeError.
    "request_timeout": {
        "spot": (SYSTEM_ERROR, "Request timeout, please try again later"),
        "linear": (SYSTEM_ERROR, "Request timeout, please try again later"),
    },
    "rate_limit": {
        "spot": (RATE_LIMIT, "Too many visits. Exceeded the API Rate Limit."),
        "linear": (RATE_LIMIT, "Too many visits. Exceeded the API Rate Limit."),
    },
}


class VenueError(Exception):
    """An answer with a non-zero retCode (HTTP 200, as Bybit sends them)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


ErrorTable = Mapping[str, Mapping[str, tuple[int, str]]]


def error(name: str, category: str | None, table: ErrorTable = ERRORS) -> VenueError:
    """The named error as Bybit answers it in ``category`` (linear when unknown)."""
    entry = table[name]
    code, message = entry["spot"] if category == "spot" else entry["linear"]
    return VenueError(code, message)
