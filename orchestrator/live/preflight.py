"""What a live run verifies of the account before it changes anything on the venue.

Bybit accounts differ in ways that make correct orders fail, and a run that only
finds out from a refused leg pays a rollback's fees on every poll. So, before any
write (leverage included), read-only:

- **the pairs' markets** (``check_markets``): both legs listed, of the right kind,
  trading, their limits readable.
- **the account type** (``/v5/account/info``): a classic account is refused. Its spot
  and derivatives wallets are separate, so the run could not value one wallet, and a
  spot market buy's quantity is read in the quote coin there. Upgrading to a Unified
  Trading Account is Bybit's own path for it.
- **the key** (``/v5/user/query-api``): read-only, or without spot trading
  (``Spot: SpotTrade``) or USDT perpetual trading (``ContractTrade: Order, Position``),
  is refused.
- **each perp's position mode** (``/v5/position/list`` by symbol: hedge mode lists
  both sides, ``positionIdx`` 1 and 2): supported. A hedge-mode perp's orders carry
  ``positionIdx`` 2, the short side's, which this strategy only ever holds.
- **the account's fee rates** (``/v5/account/fee-rate``): the strategy's cost estimate
  uses them; where they differ from ``fees:`` the run says so.
- **each perp's funding interval** (the instrument's ``fundingInterval``): many Bybit
  perps settle every 1, 2 or 4 hours, not 8; the strategy annualises with it.

A venue that does not offer one of the account endpoints (HTTP 404: not Bybit, some
compatible venues) is said and the check skipped; any other failure stops the run.
The first write, the leverage (``set_leverage``), comes once the checks passed and, on
a resume, once the journal and the venue agree.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import ccxt

from orchestrator.bybit.client import describe
from orchestrator.bybit.retry import read_venue
from orchestrator.config import Pair
from orchestrator.exceptions import NothingStarted
from orchestrator.market.instruments import funding_hours
from orchestrator.models import Category, Instrument
from orchestrator.settings import FeeSettings

CLASSIC = "1"  # Bybit's unifiedMarginStatus of a classic account; 3-6 are unified
HEDGE_SIDES = frozenset({"1", "2"})
DEFAULT_INTERVAL_HOURS = 8
_ABSENT = object()


class StartupError(NothingStarted):
    """Something is off before the first order: nothing was sent."""


def refuse(why: str) -> StartupError:
    return StartupError(f"live run not started, nothing sent: {why}")


@dataclass(frozen=True)
class PairTerms:
    """What one pair's strategy counts with: the account's taker fees and the perp's
    funding interval."""

    fees: FeeSettings
    interval_hours: int


@dataclass
class AccountShape:
    hedged: set[str] = field(default_factory=set)  # perp symbols in hedge mode
    terms: dict[str, PairTerms] = field(default_factory=dict)  # by perp symbol
    notes: list[str] = field(default_factory=list)  # said at startup


async def check_account(
    exchange: Any, pairs: Sequence[tuple[Instrument, Instrument]], fees: FeeSettings
) -> AccountShape:
    """The account as the run needs it, or StartupError naming what is off."""
    shape = AccountShape()
    info = await _private(exchange, exchange.privateGetV5AccountInfo, {}, shape, "account/info")
    if info is not None and str(info.get("unifiedMarginStatus")) == CLASSIC:
        raise refuse(
            "this is a classic (non-unified) Bybit account. It is not supported: its spot "
            "and derivatives wallets are separate and a spot market buy is sized in USDT "
            "there, so the legs could not be sized or valued as one. Upgrade the account "
            "to a Unified Trading Account (Bybit: Account > Upgrade to UTA)"
        )
    key = await _private(exchange, exchange.privateGetV5UserQueryApi, {}, shape, "user/query-api")
    if key is not None:
        _check_key(key)
    for spot, perp in pairs:
        perp_id = exchange.market(perp.symbol)["id"]
        if await _hedge_mode(exchange, perp_id, shape):
            shape.hedged.add(perp.symbol)
        shape.terms[perp.symbol] = PairTerms(
            fees=await _fees(exchange, spot, perp, fees, shape),
            interval_hours=_interval_hours(exchange.market(perp.symbol), shape),
        )
    return shape


def public_terms(
    exchange: Any, pairs: Sequence[tuple[Instrument, Instrument]], fees: FeeSettings
) -> AccountShape:
    """A dry run's terms, from the venue's public data alone: the configured fee rates
    (there is no account to ask) and each perp's funding interval."""
    shape = AccountShape()
    for _spot, perp in pairs:
        interval = _interval_hours(exchange.market(perp.symbol), shape)
        shape.terms[perp.symbol] = PairTerms(fees=fees, interval_hours=interval)
    return shape


def _check_key(key: dict[str, Any]) -> None:
    if str(key.get("readOnly")) == "1":
        raise refuse("the API key is read-only; it needs spot and contract trading")
    permissions = key.get("permissions")
    if not isinstance(permissions, dict):
        return  # nothing said: the venue refuses what the key may not do
    missing = []
    if "SpotTrade" not in (permissions.get("Spot") or []):
        missing.append("spot trading (Spot: SpotTrade)")
    contract = permissions.get("ContractTrade") or []
    if not {"Order", "Position"} <= set(contract):
        missing.append("USDT perpetual trading (Contract: Orders and Positions)")
    if missing:
        raise refuse("the API key lacks " + " and ".join(missing))


async def _hedge_mode(exchange: Any, perp_id: str, shape: AccountShape) -> bool:
    """Hedge mode lists both sides of the symbol (positionIdx 1 and 2), flat ones too."""
    params = {"category": "linear", "symbol": perp_id}
    result = await _private(
        exchange, exchange.privateGetV5PositionList, params, shape, "position/list"
    )
    entries = (result or {}).get("list") or []
    return any(str(e.get("positionIdx")) in HEDGE_SIDES for e in entries if isinstance(e, dict))


async def _fees(
    exchange: Any,
    spot: Instrument,
    perp: Instrument,
    configured: FeeSettings,
    shape: AccountShape,
) -> FeeSettings:
    rates: dict[str, Decimal] = {}
    for inst, category, name, mine in (
        (spot, "spot", "spot_taker", configured.spot_taker),
        (perp, "linear", "perp_taker", configured.perp_taker),
    ):
        venue_id = exchange.market(inst.symbol)["id"]
        params = {"category": category, "symbol": venue_id}
        result = await _private(
            exchange, exchange.privateGetV5AccountFeeRate, params, shape, "account/fee-rate"
        )
        entries = [e for e in (result or {}).get("list") or [] if isinstance(e, dict)]
        rate = _rate(next((e for e in entries if e.get("symbol") == venue_id), None))
        if rate is None:
            continue
        rates[name] = rate
        if rate != mine:
            shape.notes.append(
                f"{inst.symbol}: the account's taker fee is {rate:%}, not the {mine:%} of "
                f"fees.{name}; the strategy's cost estimate uses the account's"
            )
    return FeeSettings(
        spot_maker=configured.spot_maker,
        spot_taker=rates.get("spot_taker", configured.spot_taker),
        perp_maker=configured.perp_maker,
        perp_taker=rates.get("perp_taker", configured.perp_taker),
    )


def _rate(entry: dict[str, Any] | None) -> Decimal | None:
    if entry is None:
        return None
    try:
        rate = Decimal(str(entry.get("takerFeeRate")))
    except InvalidOperation:
        return None
    return rate if rate.is_finite() and abs(rate) <= Decimal("0.1") else None


def _interval_hours(market: dict[str, Any], shape: AccountShape) -> int:
    """The perp's funding interval in hours (Bybit gives minutes), 8 if not stated."""
    minutes = (market.get("info") or {}).get("fundingInterval")
    hours = None if minutes is None else funding_hours(minutes)
    if hours is None:
        if minutes is not None:
            shape.notes.append(
                f"{market.get('symbol')}: funding interval of {minutes} minutes is not whole "
                f"hours; annualised as {DEFAULT_INTERVAL_HOURS} h"
            )
        return DEFAULT_INTERVAL_HOURS
    return hours


async def _private(
    exchange: Any,
    call: Callable[[dict[str, Any]], Awaitable[Any]],
    params: dict[str, Any],
    shape: AccountShape,
    endpoint: str,
) -> dict[str, Any] | None:
    """One account read's ``result``; None (said once) where the venue has no such
    endpoint."""

    async def attempt() -> Any:
        try:
            return await call(params)
        except ccxt.ExchangeNotAvailable as exc:
            if " 404 " in str(exc):  # ccxt's words for HTTP 404: no such endpoint here
                return _ABSENT
            raise

    try:
        answer = await read_venue(attempt)
    except ccxt.AuthenticationError as exc:
        raise refuse(f"reading /v5/{endpoint} was refused: {describe(exchange, exc)}") from None
    if answer is _ABSENT:
        note = f"the venue does not offer /v5/{endpoint}: not checked"
        if note not in shape.notes:
            shape.notes.append(note)
        return None
    result = answer.get("result") if isinstance(answer, dict) else None
    if not isinstance(result, dict):
        raise refuse(f"/v5/{endpoint} answered without a result: {answer!r:.200}")
    return result


LEVERAGE_UNCHANGED = "110043"  # Bybit: "leverage not modified" is success


def _dec(value: Any) -> Decimal:
    return Decimal(str(value))


def instrument(market: dict[str, Any]) -> Instrument:
    """The venue's limits of one ccxt market, as the sizer needs them."""
    limits, precision = market.get("limits") or {}, market.get("precision") or {}
    return Instrument(
        symbol=market["symbol"],
        category=Category.SPOT if market.get("spot") else Category.LINEAR,
        base=market["base"],
        quote=market["quote"],
        qty_step=_dec(precision["amount"]),
        min_qty=_dec((limits.get("amount") or {}).get("min") or precision["amount"]),
        min_notional=_dec((limits.get("cost") or {}).get("min") or 0),
        price_tick=_dec(precision["price"]),
    )


def check_markets(exchange: Any, pairs: Sequence[Pair]) -> dict[str, Instrument]:
    """Every pair listed, of the right kind and trading, on both legs."""
    problems: list[str] = []
    found: dict[str, Instrument] = {}
    for pair in pairs:
        for symbol, kind in ((pair.spot, "spot"), (pair.perp, "linear perpetual")):
            market = exchange.markets.get(symbol)
            if market is None:
                problems.append(f"{symbol}: not listed on the venue")
                continue
            right = (
                market.get("spot")
                if kind == "spot"
                else market.get("swap") and market.get("linear")
            )
            if not right:
                problems.append(f"{symbol}: not a {kind} market")
            elif market.get("active") is False:
                problems.append(f"{symbol}: not trading (the venue lists it inactive)")
            else:
                try:
                    found[symbol] = instrument(market)
                except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
                    problems.append(f"{symbol}: its limits cannot be read ({exc!r})")
    if problems:
        raise StartupError("live run not started, nothing sent: " + "; ".join(problems))
    return found


async def set_leverage(exchange: Any, symbol: str, leverage: Decimal) -> None:
    try:
        await read_venue(lambda: exchange.set_leverage(float(leverage), symbol))
    except ccxt.BaseError as exc:
        if LEVERAGE_UNCHANGED not in str(exc):
            raise StartupError(
                f"live run not started, nothing sent: setting {symbol} leverage to "
                f"{leverage}x failed: {describe(exchange, exc)}"
            ) from None
