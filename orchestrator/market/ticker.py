"""Latest price per symbol, and whether it can still be traded on.

Time comes from an injected clock (epoch seconds) so that a replay drives it:
staleness is measured on the data's clock, never the wall clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal

from orchestrator.exceptions import PriceUnavailableError
from orchestrator.models import ZERO

Clock = Callable[[], float]


class TickerService:
    def __init__(self, clock: Clock = time.time, stale_after_seconds: float = 60.0) -> None:
        if not stale_after_seconds > 0:
            raise ValueError(f"stale_after_seconds must be > 0, got {stale_after_seconds}")
        self.clock = clock
        self.stale_after_seconds = stale_after_seconds
        # symbol -> (price, when seen): a replay writes its prices here directly, one
        # store per event, as update() would.
        self.quotes: dict[str, tuple[Decimal, float]] = {}

    def update(self, symbol: str, price: Decimal, timestamp: float | None = None) -> None:
        """Record ``price`` as seen at ``timestamp`` (now, on the clock, if omitted).

        Bad prices are stored as they came: refusing them is get_price's job, so
        that a bad tick also hides the good one before it.
        """
        self.quotes[symbol] = (price, self.clock() if timestamp is None else timestamp)

    def get_quote(self, symbol: str) -> tuple[Decimal, float] | None:
        """The latest price and its timestamp, whatever its quality."""
        return self.quotes.get(symbol)

    def get_price(self, symbol: str) -> Decimal | None:
        """The latest price if it is usable: present, fresh, finite and positive."""
        # The replay asks on every instant: the same rules as unusable_reason, inline.
        quote = self.quotes.get(symbol)
        if quote is None:
            return None
        price, ts = quote
        if price.is_finite() and price > ZERO and self.clock() - ts <= self.stale_after_seconds:
            return price
        return None

    def get_prices(self, first: str, second: str) -> tuple[Decimal, Decimal] | None:
        """Both usable prices (as get_price gives each), or None if either is not."""
        quotes = self.quotes
        one, two = quotes.get(first), quotes.get(second)
        if one is None or two is None:
            return None
        (a, a_ts), (b, b_ts) = one, two
        now, limit = self.clock(), self.stale_after_seconds
        if (  # > ZERO, not > 0: no int made into a Decimal on every ask
            a.is_finite()
            and a > ZERO
            and now - a_ts <= limit
            and b.is_finite()
            and b > ZERO
            and now - b_ts <= limit
        ):
            return a, b
        return None

    def require_price(self, symbol: str) -> Decimal:
        """The usable price, or PriceUnavailableError saying why there is none."""
        reason = self.unusable_reason(symbol)
        if reason:
            raise PriceUnavailableError(f"{symbol}: {reason}")
        return self.quotes[symbol][0]

    def unusable_reason(self, symbol: str) -> str | None:
        quote = self.quotes.get(symbol)
        if quote is None:
            return "no price received"
        price, ts = quote
        if price.is_nan():
            return "price is NaN"
        if not price.is_finite() or price <= 0:
            return f"price {price} is not a positive number"
        age = self.clock() - ts
        if age > self.stale_after_seconds:
            return f"price is stale ({age:.0f} s old, limit {self.stale_after_seconds:g} s)"
        return None
