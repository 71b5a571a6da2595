"""The facts of every pair a venue lists now: what ``orchestrator data download --top``
picks from, and what ``pairs: auto`` ranks on a live venue.

A pair is a linear USDT perpetual, status Trading, with a spot market of the same base
(status Trading). Per pair, from a public ccxt Bybit client (``make_public_exchange``,
pointed at Bybit or at ``orchestrator venue``):

- the perp's own funding interval (its instrument's ``fundingInterval``, minutes);
- its settled rates over the last ``history_days`` of the venue's clock, paged through
  ``fetch_funding_rate_history`` (Bybit answers the newest 200 of a window: the pages
  walk back from now); none are fetched with ``history_days`` 0 (the tickers and the
  market list are then all that is read: three requests for the whole market);
- its 24 h turnover, predicted next rate, next funding time, spread ((ask - bid) / mid)
  from the linear tickers; its basis (perp last / spot last - 1) with the spot tickers;
- when it first settled: the earliest settlement known or the instrument's
  ``launchTime``, whichever is earlier.

Numbers are Decimal from the venue's own text (ccxt's ``info``), never ccxt's floats.
Requests keep to the venue's limits: ccxt's rate limit stays on, at most ``concurrency``
pairs are fetched at once, network errors are retried with backoff. A pair that fails
is reported (which, and why) and the others are kept. A venue that keeps failing is not
asked on: ``STREAK`` pairs in a row failing the same way (the same request, the same
error) stop the read, and so does every pair failing (``UniverseError``, saying why).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import anyio
import ccxt
from anyio.abc import TaskGroup

from orchestrator.bybit.retry import retry_network_errors, venue_failure
from orchestrator.market.instruments import funding_hours
from orchestrator.universe.facts import PairFacts

DAY_MS = 86_400_000
FUNDING_PAGE = 200  # Bybit's most settlements per funding-history answer
CONCURRENCY = 4  # pairs fetched at once
ATTEMPTS = 4  # per request, network errors only
# Pairs in a row failing the same way: the venue's fault, not the pairs'. Past it, the
# rest would fail alike, each after its retries (a silent venue: 300 pairs, 19 minutes).
STREAK = 5
QUOTE = "USDT"

Progress = Callable[[int, int, str], None]
"""``progress(done, total, market)``: called as each pair's history is in (or failed)."""


@dataclass(frozen=True)
class PairFailure:
    """A pair whose facts could not be had, and why (the venue's words)."""

    market: str
    reason: str

    def __str__(self) -> str:
        return f"{self.market}: {self.reason}"


class UniverseError(Exception):
    """The venue's market list or tickers could not be read, or it kept failing for its
    pairs: no pair can be judged."""


class PairError(Exception):
    """One pair's read failed at the venue, said in words (the request, the cause)."""


async def facts_now(
    exchange: Any,
    history_days: int,
    *,
    concurrency: int = CONCURRENCY,
    attempts: int = ATTEMPTS,
    progress: Progress | None = None,
    failures: list[PairFailure] | None = None,
    perps: Collection[str] | None = None,
) -> tuple[list[PairFacts], int]:
    """Every pair's facts now, by market id, and the venue's time they are as of (what
    a rank measures history and listing age from). ``exchange``: a ccxt async Bybit client the
    caller made and closes (public: no keys needed). ``failures``, when given, is
    appended one entry per pair left out by an error. ``perps``: only the pairs of these
    perp symbols (None: every pair). Raises UniverseError when the markets, the venue's
    time or the tickers cannot be read."""
    if history_days < 0 or concurrency < 1 or attempts < 1:
        raise ValueError("history_days must be at least 0, concurrency and attempts 1")

    async def read(what: str, call: Callable[[], Any]) -> Any:
        try:
            return await retry_network_errors(
                call, attempts=attempts, base_delay=0.25, max_delay=4.0
            )
        except ccxt.BaseError as exc:
            raise UniverseError(f"{what}: {venue_failure(exc, attempts)}") from exc

    await read("the market list", exchange.load_markets)
    now_ms = int(await read("the venue's time", exchange.fetch_time))
    linear = _ticker_rows(await read("the linear tickers", lambda: _tickers(exchange, "linear")))
    spot = _ticker_rows(await read("the spot tickers", lambda: _tickers(exchange, "spot")))
    pairs = listed_pairs(exchange.markets)
    if perps is not None:
        pairs = [(perp, spot_market) for perp, spot_market in pairs if perp["symbol"] in perps]
    since = now_ms - history_days * DAY_MS
    found: dict[str, PairFacts] = {}
    lost: list[PairFailure] = []
    limiter = anyio.CapacityLimiter(concurrency)
    done = 0
    streak: list[str] = []  # the pairs failing in a row the same way, newest last
    same_way: tuple[str, ...] = ()  # how they failed: the request, the error's name
    stopped: str | None = None

    async def one(perp: Any, spot_market: Any, group: TaskGroup) -> None:
        nonlocal done, same_way, stopped
        market = perp["id"]
        async with limiter:
            how: tuple[str, ...] = ()
            try:
                try:
                    rates = (
                        await _settled(exchange, perp, since, now_ms, attempts)
                        if history_days
                        else []
                    )
                except ccxt.BaseError as exc:
                    how = ("the funding history", type(exc).__name__)
                    raise PairError(f"the funding history: {venue_failure(exc, attempts)}") from exc
                found[market] = _facts(perp, spot_market, rates, linear, spot)
            except (PairError, ArithmeticError, LookupError, TypeError, ValueError) as exc:
                lost.append(PairFailure(market, str(exc) or type(exc).__name__))
            done += 1
            if how and how == same_way:
                streak.append(market)
            else:
                streak[:] = [market] if how else []
                same_way = how
            if len(streak) >= STREAK and stopped is None:
                stopped = (
                    f"{len(streak)} pairs in a row failed the same way ({', '.join(streak)}), "
                    f"so no more were asked ({done} of {len(pairs)} pairs tried); the last: "
                    f"{lost[-1]}"
                )
                group.cancel_scope.cancel()
            if progress is not None:
                progress(done, len(pairs), market)

    async with anyio.create_task_group() as group:
        for perp, spot_market in pairs:
            group.start_soon(one, perp, spot_market, group)
    if stopped is not None:
        raise UniverseError(stopped)
    if pairs and not found:
        raise UniverseError(
            f"none of the {len(pairs)} pairs could be read; the first: "
            f"{min(lost, key=lambda f: f.market)}"
        )
    if failures is not None:
        failures.extend(sorted(lost, key=lambda f: f.market))
    return [found[market] for market in sorted(found)], now_ms


def listed_pairs(markets: Mapping[str, Any]) -> list[tuple[Any, Any]]:
    """(perp, spot) ccxt markets of every linear USDT perpetual trading with a spot
    market of its base trading too, by market id."""
    pairs = []
    for perp in markets.values():
        if not (perp.get("swap") and perp.get("linear") and perp.get("settle") == QUOTE):
            continue
        if perp.get("quote") != QUOTE or not _trading(perp):
            continue
        spot_market = markets.get(f"{perp['base']}/{QUOTE}")
        if spot_market is None or not spot_market.get("spot") or not _trading(spot_market):
            continue
        pairs.append((perp, spot_market))
    return sorted(pairs, key=lambda pair: str(pair[0]["id"]))


def _trading(market: Any) -> bool:
    return (market.get("info") or {}).get("status") == "Trading"


async def _tickers(exchange: Any, category: str) -> Any:
    # The raw endpoint: every row's text as the venue wrote it (ccxt's tickers are floats).
    return await exchange.public_get_v5_market_tickers({"category": category})


def _ticker_rows(answer: Any) -> dict[str, dict[str, Any]]:
    rows = ((answer or {}).get("result") or {}).get("list")
    if not isinstance(rows, list):
        raise UniverseError(f"the tickers answer holds no list: {str(answer)[:200]}")
    return {str(row.get("symbol")): row for row in rows if isinstance(row, dict)}


async def _settled(
    exchange: Any, perp: Any, since: int, now: int, attempts: int
) -> list[tuple[int, Decimal]]:
    """The perp's settlements in (since, now], oldest first, paging back from now: Bybit
    answers the newest FUNDING_PAGE of a window."""
    found: dict[int, Decimal] = {}
    end = now
    while end >= since:

        async def page(end: int = end) -> Any:
            return await exchange.fetch_funding_rate_history(
                perp["symbol"], since, FUNDING_PAGE, {"until": end}
            )

        history = await retry_network_errors(
            page, attempts=attempts, base_delay=0.25, max_delay=4.0
        )
        stamps = []
        for entry in history:
            raw = entry.get("info") or {}
            stamp = int(raw["fundingRateTimestamp"])
            if since < stamp <= end:  # (since, now]: as the recorded screen counts
                found[stamp] = _decimal(raw.get("fundingRate"), "fundingRate")
                stamps.append(stamp)
        if len(history) < FUNDING_PAGE or not stamps:
            break
        end = min(stamps) - 1
    return sorted(found.items())


def _facts(
    perp: Any,
    spot_market: Any,
    rates: list[tuple[int, Decimal]],
    linear: Mapping[str, Mapping[str, Any]],
    spot: Mapping[str, Mapping[str, Any]],
) -> PairFacts:
    market = str(perp["id"])
    info = perp.get("info") or {}
    minutes = info.get("fundingInterval")
    hours = funding_hours(minutes)
    if hours is None:
        raise ValueError(f"fundingInterval {str(minutes)[:20]!r} is not whole hours")
    row = linear.get(market)
    if row is None:
        raise LookupError("the venue shows no linear ticker for it")
    spot_row = spot.get(str(spot_market["id"]))
    bid, ask = _optional(row.get("bid1Price")), _optional(row.get("ask1Price"))
    spread = (ask - bid) / ((ask + bid) / 2) if bid and ask and bid > 0 and ask >= bid else None
    perp_last = _optional(row.get("lastPrice"))
    spot_last = _optional(spot_row.get("lastPrice")) if spot_row is not None else None
    basis = perp_last / spot_last - 1 if perp_last and spot_last and spot_last > 0 else None
    next_time = _optional(row.get("nextFundingTime"))
    known = [t for t, _ in rates[:1]]
    launch = _optional(info.get("launchTime"))
    if launch is not None and launch > 0:
        known.append(int(launch))
    return PairFacts(
        market=market,
        spot=str(spot_market["symbol"]),
        perp=str(perp["symbol"]),
        interval_hours=hours,
        rates=rates,
        first_settled_ms=min(known) if known else None,
        turnover_24h=_decimal(row.get("turnover24h"), "turnover24h"),
        predicted_rate=_optional(row.get("fundingRate")),
        next_funding_ms=int(next_time) if next_time else None,
        spread=spread,
        basis=basis,
    )


def _decimal(text: Any, field: str) -> Decimal:
    value = _optional(text)
    if value is None:
        raise ValueError(f"{field} is {str(text)[:40]!r}, not a number")
    return value


def _optional(text: Any) -> Decimal | None:
    """The venue's text of a finite number as a Decimal; None when blank or not one."""
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None
