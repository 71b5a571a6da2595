"""The live market source: prices, settled funding and the funding a position was
paid, read from the venue through ccxt (reads retried with backoff, never a create).

The market's clock is the venue's: each reading carries the venue's time, and
between readings the clock runs on at ``speed`` (1 live; faster when rehearsing
against the loopback venue's compressed clock). Prices go stale on that clock.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any

from orchestrator.bybit.pages import executions_between
from orchestrator.bybit.retry import read_venue as read
from orchestrator.market.ticker import TickerService
from orchestrator.models import ZERO
from orchestrator.trading.run import PairRun

HOUR_MS = 3_600_000
RATES_PAGE = 200  # Bybit's largest page of settled funding rates


def _decimal(value: Any) -> Decimal | None:
    """A number the venue sent, or None when it sent none or no number (a bad price
    is then no price: nothing trades on it)."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except (ArithmeticError, ValueError):
        return None
    return number if number.is_finite() else None


class MarketClock:
    """The venue's time in ms: the last reading, run on at ``speed`` since."""

    def __init__(self, speed: float = 1.0) -> None:
        self.speed = speed
        self._venue_ms = int(time.time() * 1000)
        self._at = time.monotonic()

    def set(self, venue_ms: int) -> None:
        self._venue_ms, self._at = venue_ms, time.monotonic()

    def now_ms(self) -> int:
        return self._venue_ms + int((time.monotonic() - self._at) * self.speed * 1000)


@dataclass(frozen=True)
class FundingPaid:
    """One funding execution on the venue (Bybit's execType=Funding)."""

    id: str
    time_ms: int
    quantity: Decimal
    price: Decimal
    rate: Decimal
    received: Decimal  # Bybit's execFee is positive when paid: received = -execFee


class LiveMarket:
    def __init__(
        self, exchange: Any, pairs: Sequence[PairRun], ticker: TickerService, clock: MarketClock
    ) -> None:
        self._exchange = exchange
        self._pairs = list(pairs)
        self._ticker = ticker
        self.clock = clock
        self._next_funding: dict[int, int] = {}  # pair index -> the venue's next funding time
        self._settled: dict[int, int] = {}  # pair index -> last settlement fed to the strategy
        self._paid: set[str] = set()  # funding executions already recorded
        self._caught_up: set[int] = set()  # pairs whose settlements since the warm-up were read
        # The venue's market ids (BTCUSDT names both legs: the category tells them apart).
        self._ids = {
            symbol: str(exchange.market(symbol)["id"])
            for run in self._pairs
            for symbol in (run.spot.symbol, run.perp.symbol)
        }
        self.polls = 0
        # Settled rates already read, by perp symbol, oldest first (pairs: auto read the
        # universe's history span when choosing: live/auto.py); the warm-up takes them.
        self.known: Mapping[str, list[tuple[int, Decimal]]] = {}

    async def warm_up(self, window: int) -> None:
        """Feed each strategy the last ``window`` rates settled before now, oldest first,
        as a replay of a window is warmed up (orchestrator/replay/window.py; nothing is held
        yet: no money moves). One settled now comes with the first prices. Rates already
        known are not read again; all of them are the pair's history (the ranking's)."""
        now = self.clock.now_ms() - 1
        for i, run in enumerate(self._pairs):
            rates = {t: rate for t, rate in self.known.get(run.perp.symbol, ()) if t <= now}
            if len(rates) < window:
                rows = await read(
                    partial(
                        self._exchange.fetch_funding_rate_history,
                        run.perp.symbol,
                        None,
                        window,
                        {"until": now},
                    )
                )
                for row in rows:
                    rate = _decimal(row.get("fundingRate"))
                    if rate is not None:
                        rates[int(row["timestamp"])] = rate
            settled = sorted(rates.items())
            for _, rate in settled[-window:]:
                run.strategy.on_funding(rate)
            run.funding_rates.extend(settled)
            if settled:
                self._settled[i] = settled[-1][0]

    async def poll(self) -> set[int]:
        """Read the venue's time, then every pair's prices (one request per category)
        and return the pairs whose prices came.

        Prices are read as Bybit's decimal text from the tickers' rows, by the venue's
        market id: not through ccxt's parsed tickers, which carry floats and tell a
        linear row from a spot one by a field a venue may leave out."""
        self.polls += 1
        # One try: a venue that does not answer the time is said to be unreachable
        # within a poll (the next poll is the retry), not after a series of retries.
        self.clock.set(int(await read(self._exchange.fetch_time, attempts=1)))
        rows: dict[str, dict[str, dict[str, Any]]] = {}
        for category in ("spot", "linear"):
            answer = await read(
                partial(self._exchange.publicGetV5MarketTickers, {"category": category})
            )
            listed = ((answer or {}).get("result") or {}).get("list") or []
            rows[category] = {str(r.get("symbol")): r for r in listed if isinstance(r, dict)}
        now = self.clock.now_ms()
        touched: set[int] = set()
        for i, run in enumerate(self._pairs):
            spot = rows["spot"].get(self._ids[run.spot.symbol], {})
            perp = rows["linear"].get(self._ids[run.perp.symbol], {})
            for symbol, row in ((run.spot.symbol, spot), (run.perp.symbol, perp)):
                last = _decimal(row.get("lastPrice"))
                if last is not None:
                    self._ticker.update(symbol, last, now / 1000)
                    touched.add(i)
            next_time = perp.get("nextFundingTime")
            if next_time:
                self._next_funding.setdefault(i, int(next_time))
        return touched

    async def settlements(self) -> list[tuple[int, int, Decimal]]:
        """(pair index, settlement time, rate) of every settlement since the last
        reading, as the venue's funding history records them."""
        now = self.clock.now_ms()
        found: list[tuple[int, int, Decimal]] = []
        for i, run in enumerate(self._pairs):
            due = self._next_funding.get(i)
            # The first reading also takes what settled between the warm-up and the
            # first prices (the venue's next funding time is after it by then).
            first = i not in self._caught_up
            if not first and (due is None or now < due):
                continue
            self._caught_up.add(i)
            if due is None and i not in self._settled:
                continue
            since = self._settled.get(i, (due or now) - 1)
            for stamp, rate in await self._rates(run, since + 1, now + 1):
                found.append((i, stamp, rate))
                self._settled[i] = stamp
            if due is not None and i in self._settled and self._settled[i] >= due:
                del self._next_funding[i]  # the next poll reads the new next funding time
        return found

    async def paper_funding(
        self, run: PairRun, since_ms: int, quantity: Decimal
    ) -> list[FundingPaid]:
        """A dry run's short of ``quantity`` contracts: each settlement since ``since_ms``
        in the venue's public funding history, paid at the perp's price of the
        settlement's hour (its candle's open, the venue's own text), as a replay pays it."""
        paid: list[FundingPaid] = []
        for stamp, rate in await self._rates(run, since_ms, self.clock.now_ms() + 1):
            price = await self._price_at(run, stamp)
            if price is None:
                continue  # no price for that hour: not paid, and the summary says so
            received = quantity * price * rate  # the short receives a positive rate
            key = f"paper-{run.perp.symbol}-{stamp}"
            paid.append(FundingPaid(key, stamp, quantity, price, rate, received))
        return paid

    async def _rates(self, run: PairRun, since_ms: int, until_ms: int) -> list[tuple[int, Decimal]]:
        """The perp's rates settled from ``since_ms`` to ``until_ms``, oldest first. Bybit
        answers the newest ``RATES_PAGE`` of a span: the span is read back from its end,
        page after page (a run away for long has more settlements than one page)."""
        rates: dict[int, Decimal] = {}
        end = until_ms
        while end >= since_ms:
            rows = await read(
                partial(
                    self._exchange.fetch_funding_rate_history,
                    run.perp.symbol,
                    since_ms,
                    RATES_PAGE,
                    {"until": end},
                )
            )
            stamps = [int(row["timestamp"]) for row in rows]
            for stamp, row in zip(stamps, rows, strict=True):
                rate = _decimal(row.get("fundingRate"))
                if since_ms <= stamp <= end and rate is not None:
                    rates[stamp] = rate
            if len(rows) < RATES_PAGE or min(stamps) > end:
                break  # the span's first page (or an answer past the end: no progress)
            end = min(stamps) - 1
        return sorted(rates.items())

    async def _price_at(self, run: PairRun, stamp: int) -> Decimal | None:
        """The perp's price at ``stamp``: the open of the hour's candle, or, where the
        venue does not list a candle still forming, the close of the hour before."""
        for start, column in ((stamp, 1), (stamp - HOUR_MS, 4)):
            params: dict[str, str | int] = {"category": "linear", "interval": "60"}
            params |= {"symbol": self._ids[run.perp.symbol], "start": start, "end": start}
            answer = await read(partial(self._exchange.publicGetV5MarketKline, params))
            candles = ((answer or {}).get("result") or {}).get("list") or []
            if candles and isinstance(candles[0], list) and len(candles[0]) > column:
                return _decimal(candles[0][column])
        return None

    async def funding_paid(self, run: PairRun, since_ms: int) -> list[FundingPaid]:
        """Funding executions on the run's perp from ``since_ms`` to now not yet recorded:
        every one, however long since (Bybit lists them a week and a page at a time)."""

        def page(params: dict[str, Any]) -> Awaitable[Any]:
            return read(
                partial(self._exchange.fetch_funding_history, run.perp.symbol, None, None, params)
            )

        rows = await executions_between(page, since_ms, self.clock.now_ms())
        paid: list[FundingPaid] = []
        for row in sorted(rows, key=lambda r: r.get("timestamp") or 0):
            info = row.get("info") or {}
            exec_id = str(row.get("id") or info.get("execId") or "")
            if not exec_id or exec_id in self._paid:
                continue
            fee = _decimal(info.get("execFee"))
            if fee is None:
                fee = _decimal(row.get("amount"))
            if fee is None:
                continue
            self._paid.add(exec_id)
            price = _decimal(info.get("markPrice")) or _decimal(info.get("execPrice")) or ZERO
            paid.append(
                FundingPaid(
                    id=exec_id,
                    time_ms=int(row.get("timestamp") or info.get("execTime") or 0),
                    quantity=_decimal(info.get("execQty")) or ZERO,
                    price=price,
                    rate=_decimal(info.get("feeRate")) or _decimal(row.get("rate")) or ZERO,
                    received=-fee,
                )
            )
        return paid
