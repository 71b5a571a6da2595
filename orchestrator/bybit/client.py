"""The ccxt Bybit client a live run trades through, built from the run's settings.

One place sets what ccxt, Bybit and the manager must agree on (``VenueTiming``):
ccxt's request ``timeout``, Bybit's ``recvWindow``; the LiveExecutor derives from
the same how long a lost order may still land. ccxt's own throttle is off (it
queues the second leg behind the first); the LiveExecutor paces requests by
Bybit's per-endpoint budgets instead. ``maxRetriesOnFailure`` stays 0: ccxt
would otherwise resend an order whose answer was lost.

Every answer is checked before ccxt parses it. ccxt 4.5 reads most broken answers
(an empty body, an HTML page with status 200, truncated JSON, a missing
``result``...) as an order without an id, or as an empty list: "not found" for an
order that exists. The client ``make_exchange`` builds raises ``UnreadableAnswer``
instead, a ``ccxt.NetworkError``: a read is retried, a create or cancel is
ambiguous (its outcome unknown), and neither reads as "rejected" or "not found".
Bybit's "try again later" answers (``TRY_AGAIN``), which ccxt raises as a plain
``ExchangeError``, are raised as ``VenueBusy``, a ``ccxt.NetworkError`` too.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from urllib.parse import quote, quote_plus, urlsplit

from orchestrator.exceptions import OrchestratorError
from orchestrator.settings import VenueTiming

Network = Literal["mainnet", "testnet", "demo"]
KEY_ENV, SECRET_ENV = "BYBIT_API_KEY", "BYBIT_API_SECRET"
REST_BASES = ("spot", "futures", "v2", "public", "private")
_EXCERPT = 120  # characters of a broken body quoted in the error

# Bybit v5's order statuses (orderStatus); ccxt passes any other word through unmapped.
ORDER_STATUSES = frozenset(
    {
        "Created",
        "New",
        "Rejected",
        "PartiallyFilled",
        "PartiallyFilledCanceled",
        "Filled",
        "PendingCancel",
        "Cancelled",
        "Untriggered",
        "Triggered",
        "Deactivated",
        "Active",
    }
)
# Bybit's order ids: digits (spot) or a UUID (contracts).
_ORDER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class CredentialsMissing(OrchestratorError):
    """The API key or secret is not in the environment, or cannot be a key."""


def credentials() -> tuple[str, str]:
    """The API key and secret, from the environment only, without the whitespace around
    them (a key pasted from a file often ends with a line break). One with whitespace or
    a control character inside is refused (no venue takes it, and an HTTP header cannot
    carry a line break); the message never shows a value."""
    found = {name: os.environ.get(name, "").strip() for name in (KEY_ENV, SECRET_ENV)}
    missing = [name for name, value in found.items() if not value]
    if missing:
        raise CredentialsMissing(
            f"live mode needs {' and '.join(missing)} in the environment "
            "(never in config.yaml); nothing was sent"
        )
    for name, value in found.items():
        if any(c.isspace() for c in value):
            inside = "whitespace (a space, a tab or a line break)"
        elif not value.isprintable():
            inside = "a control or invisible formatting character"
        else:
            continue
        raise CredentialsMissing(
            f"{name} holds {inside} inside it: a key or secret is one word of printable "
            "characters (whitespace around it is ignored); set it again; nothing was sent"
        )
    return found[KEY_ENV], found[SECRET_ENV]


def secret_forms(secret: str) -> set[str]:
    """``secret`` as it may appear in a message: as sent, escaped in JSON (a venue's
    answer, which ccxt quotes in its errors) or by ``repr``, percent-encoded (a URL)."""
    return {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
        quote(secret, safe=""),
        quote_plus(secret),
    }


def make_exchange(
    api_key: str,
    secret: str,
    timing: VenueTiming,
    *,
    network: Network = "mainnet",
    url: str | None = None,
) -> Any:
    """ccxt's async Bybit client for ``network``, or for the venue at ``url`` (the
    loopback venue: every REST base, sandbox and demo included, point there, so no
    setting can reach the internet), checking every answer (``answer_problem``).
    The caller closes it."""
    config: dict[str, Any] = {
        "apiKey": api_key,
        "secret": secret,
        "timeout": timing.request_timeout_ms,
        "enableRateLimit": False,
        "maxRetriesOnFailure": 0,
        "has": {"fetchCurrencies": False},  # else load_markets asks /v5/asset/coin/query-info
        "options": {
            "recvWindow": timing.recv_window_ms,
            "fetchMarkets": {"types": ["spot", "linear"]},
            "adjustForTimeDifference": False,
            # A unified account (UTA), declared so ccxt does not probe for it.
            "enableUnifiedAccount": True,
            "enableUnifiedMargin": False,
            "unifiedMarginStatus": 6,
        },
    }
    if url is not None:
        api = {name: url for name in REST_BASES}
        config["urls"] = {"api": api, "test": api, "demotrading": api}
        config["timeout_on_exit"] = 0  # ccxt's pause on close is for TLS; loopback has none
    exchange = _classes()["CheckedBybit"](config)
    if url is None and network == "testnet":
        exchange.set_sandbox_mode(True)
    elif url is None and network == "demo":
        exchange.enable_demo_trading(True)
    return exchange


# Bybit's retCodes that say "try again later": 10000 "Server Timeout", 10016 "System error.
# Please try again later". ccxt 4.5 maps 10016 to a plain ExchangeError (10000 it does not
# know), so nothing would retry them. Its other passing troubles already map to
# NetworkErrors: 10002 (timestamp, recv window) InvalidNonce, 10006 (rate limit)
# RateLimitExceeded, HTTP 5xx ExchangeNotAvailable or RequestTimeout.
TRY_AGAIN = frozenset({10000, 10016})


def __getattr__(name: str) -> Any:
    """``UnreadableAnswer``, ``VenueBusy`` and ``CheckedBybit``, built on first use: ccxt
    takes a while to load, and importing this module (for ``credentials``) should not."""
    if name in ("UnreadableAnswer", "VenueBusy", "CheckedBybit"):
        return _classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _classes() -> dict[str, type]:
    import ccxt
    import ccxt.async_support as ccxt_async

    class UnreadableAnswer(ccxt.NetworkError, ccxt.BadResponse):  # type: ignore[misc]
        """The venue answered, but what it said cannot be read: neither a refusal
        nor "not found". A NetworkError, so a read is retried and a create or
        cancel is ambiguous (look the order up)."""

    class VenueBusy(ccxt.ExchangeNotAvailable):  # type: ignore[misc]
        """Bybit answered "try again later" (``TRY_AGAIN``): passing, as a gateway's 503
        is. A NetworkError, so a read is retried and a create or cancel is ambiguous
        (Bybit may have placed the order before it failed to answer)."""

    class CheckedBybit(ccxt_async.bybit):  # type: ignore[misc]
        """``ccxt.async_support.bybit`` that checks every answer's envelope before
        ccxt reads it (ccxt calls ``handle_errors`` for every response)."""

        def handle_errors(
            self,
            code: int,
            reason: str,
            url: str,
            method: str,
            headers: Any,
            body: str,
            response: Any,
            request_headers: Any,
            request_body: Any,
        ) -> None:
            endpoint = endpoint_of(url)
            readable = envelope_problem(response) is None
            if not 200 <= code < 300:
                if readable and response["retCode"] != 0:
                    # Bybit's own error: ccxt's mapping of its retCode.
                    self.refusal(
                        code, reason, url, method, headers, body, response,
                        request_headers, request_body,
                    )  # fmt: skip
                # A gateway's page: ccxt's mapping of the status (503: ExchangeNotAvailable...).
                self.handle_http_status_code(code, reason, url, method, body)
                raise self.unreadable(method, endpoint, code, "not a success status", body)
            problem = answer_problem(endpoint, response)
            if problem is not None and not body:
                problem = "an empty body"
            if problem is not None:
                raise self.unreadable(method, endpoint, code, problem, body)
            if response["retCode"] != 0:
                self.refusal(
                    code, reason, url, method, headers, body, response,
                    request_headers, request_body,
                )  # fmt: skip

        def refusal(
            self, code: int, reason: str, url: str, method: str, headers: Any, body: str,
            response: Any, request_headers: Any, request_body: Any,
        ) -> None:  # fmt: skip
            """Raises ccxt's exception for Bybit's retCode; VenueBusy for ``TRY_AGAIN``."""
            try:
                super().handle_errors(
                    code, reason, url, method, headers, body, response,
                    request_headers, request_body,
                )  # fmt: skip
            except ccxt.ExchangeError as exc:
                # Only ccxt's catch-all: "Request timeout" (10016 too) is a RequestTimeout.
                if type(exc) is ccxt.ExchangeError and response["retCode"] in TRY_AGAIN:
                    raise VenueBusy(str(exc)) from None
                raise

        def unreadable(
            self, method: str, endpoint: str, code: int, problem: str, body: str | None
        ) -> Exception:
            text = body or ""
            for secret in (self.apiKey, self.secret):  # before cutting: none is left in halves
                if secret:
                    text = _masked(text, str(secret))
            excerpt = text[:_EXCERPT] + ("..." if len(text) > _EXCERPT else "")
            return UnreadableAnswer(
                f"{self.id} {method} /v5/{endpoint}: HTTP {code}, answer unreadable: "
                f"{problem}; body ({len(text)} characters): {excerpt!r}"
            )

    return {
        "UnreadableAnswer": UnreadableAnswer,
        "VenueBusy": VenueBusy,
        "CheckedBybit": CheckedBybit,
    }


# -- the checks (pure: no ccxt) ----------------------------------------------------


def endpoint_of(url: str) -> str:
    """``order/create`` of ``https://api.bybit.com/v5/order/create?...``."""
    path = urlsplit(url).path
    return path.split("/v5/", 1)[1] if "/v5/" in path else path.lstrip("/")


def envelope_problem(response: Any) -> str | None:
    """What is wrong with Bybit's envelope ``{"retCode": int, "retMsg": str, ...}``
    (ccxt's parse of the body: None when it was not JSON), or None."""
    if response is None:
        return "not JSON"
    if not isinstance(response, dict):
        return f"a JSON {type(response).__name__}, not an object"
    if "retCode" not in response:
        return "no retCode"
    ret_code = response["retCode"]
    if type(ret_code) is not int:
        return f"retCode {ret_code!r} is not an integer"
    if not isinstance(response.get("retMsg"), str):
        return "retMsg is not a string"
    return None


def answer_problem(endpoint: str, response: Any) -> str | None:
    """Why the answer to ``endpoint`` cannot be read, or None: a sound envelope, and
    for retCode 0 a ``result`` object holding what the endpoint returns."""
    problem = envelope_problem(response)
    if problem is not None or response["retCode"] != 0:
        return problem
    result = response.get("result")
    if not isinstance(result, dict):
        return "no result object" if result is None else "result is not an object"
    if _has_non_finite(result):
        return "a number is NaN or infinite"
    if endpoint in ("order/create", "order/cancel", "order/amend"):
        return _first(_order_id_problem(result.get("orderId")), _text(result, "orderLinkId"))
    if endpoint in _LISTS:
        entries = result.get("list")
        if not isinstance(entries, list):
            return "result.list is not a list"
        check = _LISTS[endpoint]
        for i, entry in enumerate(entries):
            problem = check(entry)
            if problem is not None:
                return f"result.list[{i}]: {problem}"
    return None


def order_id_problem(value: Any) -> str | None:
    """Why ``value`` is not a Bybit order id, or None."""
    return _order_id_problem(value)


def _order_id_problem(value: Any) -> str | None:
    if not isinstance(value, str) or not _ORDER_ID.fullmatch(value):
        return f"orderId {value!r} is not an order id"
    try:
        finite = Decimal(value).is_finite()
    except InvalidOperation:
        return None  # a UUID
    return None if finite else f"orderId {value!r} is not an order id"


def _first(*problems: str | None) -> str | None:
    return next((p for p in problems if p is not None), None)


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_non_finite(v) for v in value)
    return False


def _number_text(value: Any, *, blank: bool) -> bool:
    """Bybit sends numbers as decimal text ("" where it has none, if ``blank``); a
    plain finite JSON number from a venue that writes them so is read as well."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return math.isfinite(value)
    if not isinstance(value, str):
        return False
    if value == "":
        return blank
    try:
        return Decimal(value).is_finite()
    except InvalidOperation:
        return False


def _numbers(
    entry: dict[str, Any], required: tuple[str, ...], optional: tuple[str, ...]
) -> str | None:
    for key in required:
        if not _number_text(entry.get(key), blank=False):
            return f"{key} {entry.get(key)!r} is not a number"
    for key in optional:
        if key in entry and not _number_text(entry[key], blank=True):
            return f"{key} {entry[key]!r} is not a number"
    return None


def _text(
    entry: dict[str, Any], key: str, *, words: frozenset[str] | None = None, blank: bool = True
) -> str | None:
    value = entry.get(key)
    if not isinstance(value, str) or (value == "" and not blank):
        return f"{key} {value!r} is not text"
    if words is not None and value not in words:
        return f"{key} {value!r} is none of Bybit's"
    return None


def _object(check: Callable[[dict[str, Any]], str | None]) -> Callable[[Any], str | None]:
    def checked(entry: Any) -> str | None:
        return check(entry) if isinstance(entry, dict) else "not an object"

    return checked


_SIDES = frozenset({"Buy", "Sell"})


@_object
def _order(entry: dict[str, Any]) -> str | None:
    fees = entry.get("cumFeeDetail", {})
    if not isinstance(fees, dict) or not all(
        _number_text(fee, blank=False) for fee in fees.values()
    ):
        return f"cumFeeDetail {fees!r} is not a map of coins to numbers"
    return _first(
        _order_id_problem(entry.get("orderId")),
        _text(entry, "orderLinkId"),
        _text(entry, "symbol", blank=False),
        _text(entry, "side", words=_SIDES),
        _text(entry, "orderStatus", words=ORDER_STATUSES),
        _numbers(
            entry,
            ("qty", "cumExecQty"),
            ("cumExecValue", "cumExecFee", "avgPrice", "price", "leavesQty"),
        ),
    )


@_object
def _position(entry: dict[str, Any]) -> str | None:
    return _first(
        _text(entry, "symbol", blank=False),
        _text(entry, "side", words=_SIDES | {""}),
        _numbers(entry, ("size",), ("avgPrice", "markPrice", "positionValue", "leverage")),
    )


@_object
def _coin(entry: dict[str, Any]) -> str | None:
    return _first(
        _text(entry, "coin", blank=False),
        _numbers(
            entry,
            ("walletBalance",),
            ("equity", "locked", "availableToWithdraw", "totalOrderIM", "totalPositionIM"),
        ),
    )


@_object
def _account(entry: dict[str, Any]) -> str | None:
    coins = entry.get("coin")
    if not isinstance(coins, list):
        return "coin is not a list"
    for i, coin in enumerate(coins):
        problem = _coin(coin)
        if problem is not None:
            return f"coin[{i}]: {problem}"
    return None


@_object
def _ticker(entry: dict[str, Any]) -> str | None:
    return _first(
        _text(entry, "symbol", blank=False),
        _numbers(
            entry,
            (),
            (
                "lastPrice",
                "bid1Price",
                "ask1Price",
                "markPrice",
                "indexPrice",
                "fundingRate",
                "nextFundingTime",
            ),
        ),
    )


@_object
def _listed(entry: dict[str, Any]) -> str | None:
    return None


def _candle(entry: Any) -> str | None:
    if not isinstance(entry, list) or not all(_number_text(v, blank=False) for v in entry):
        return "not a list of numbers"
    return None


# Endpoints whose result holds ``list``, and the check of each entry.
_LISTS: dict[str, Callable[[Any], str | None]] = {
    "order/realtime": _order,
    "order/history": _order,
    "position/list": _position,
    "account/wallet-balance": _account,
    "market/tickers": _ticker,
    "market/kline": _candle,
    "market/instruments-info": _listed,
    "market/funding/history": _listed,
    "execution/list": _listed,
}


# Bybit's refusals that the same request meets again, whatever the moment: a parameter,
# the key, the account's mode or permissions, a balance, a size. Not these: 10002
# (timestamp), 10006 (rate limit), 10016 (system error) pass.
REPEATED_REFUSALS = {
    10001: "a parameter the venue refuses (or the account's position mode)",
    10003: "the API key is not valid",
    10004: "the request's signature is refused",
    10005: "the API key lacks the permission",
    10010: "the request's IP address is not allowed for the key",
    110007: "not enough balance",
    170131: "not enough balance",
    110094: "below the minimum order value",
    170121: "the symbol is not valid",
    170135: "the quantity is too large",
    170136: "the quantity is too small",
    170137: "the quantity has too many decimals",
    170140: "below the minimum order value",
}
_RET_CODE = re.compile(r'"retCode"\s*:\s*"?(\d+)"?\s*,\s*"retMsg"\s*:\s*"([^"]*)"')


BALANCE_REFUSALS = frozenset({110007, 170131})  # met again until the balance changes


def repeated_refusal(text: str) -> tuple[str, bool] | None:
    """The first refusal in ``text`` (a position's reason, with the venue's words) that the
    venue would answer again, described, and whether a change of balance ends it; None if
    there is none."""
    for match in _RET_CODE.finditer(text):
        code = int(match.group(1))
        if code in REPEATED_REFUSALS:
            said = f"{REPEATED_REFUSALS[code]}: retCode {code} {match.group(2)!r}"
            return said, code in BALANCE_REFUSALS
    return None


def describe(exchange: Any, exc: BaseException) -> str:
    """What the venue said, without the credentials (Bybit echoes the key on bad
    signatures, and ccxt puts the venue's answer in its messages)."""
    return scrub(exchange, f"{type(exc).__name__}: {exc}")


def scrub(exchange: Any, text: str) -> str:
    """``text`` without the exchange's key and secret, in any of their forms
    (``secret_forms``). A credential shorter than six characters is no real one, and
    replacing it would garble the text."""
    for secret in (getattr(exchange, "apiKey", None), getattr(exchange, "secret", None)):
        if secret and len(str(secret)) >= 6:
            text = _masked(text, str(secret))
    return text


def _masked(text: str, secret: str) -> str:
    for form in sorted(secret_forms(secret), key=len, reverse=True):  # longest first
        text = text.replace(form, "***")
    return text
