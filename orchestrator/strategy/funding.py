"""When to hold a pair's hedge, from what was known at that moment only.

A strategy sees settled funding rates one by one as they settle, and the prices
it is asked about; it keeps no other data, so it cannot look ahead.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal
from typing import Protocol

from orchestrator.config import StrategySettings
from orchestrator.settings import FeeSettings

HOURS_PER_YEAR = Decimal(365 * 24)


class Strategy(Protocol):
    def on_funding(self, rate: Decimal) -> None:
        """A funding settlement at this rate has just happened."""

    def entry_reason(self, spot_price: Decimal, perp_price: Decimal) -> str | None:
        """Why to open a hedge now, or None to stay out."""

    def exit_reason(self, spot_price: Decimal, perp_price: Decimal) -> str | None:
        """Why to close the hedge now, or None to hold."""


def basis(spot_price: Decimal, perp_price: Decimal) -> Decimal:
    """Perp premium over spot, a fraction: perp / spot - 1."""
    return perp_price / spot_price - 1


class FundingStrategy:
    """Enter when recent funding, annualised, clears a threshold and the funding
    expected over the minimum holding time pays for the round trip; leave when it
    falls below the exit threshold, turns negative K settlements in a row, or the
    basis moves beyond its limit."""

    def __init__(
        self,
        settings: StrategySettings,
        fees: FeeSettings,
        slippage: Decimal,
        interval_hours: int = 8,
    ) -> None:
        self._s = settings
        self._per_year = HOURS_PER_YEAR / interval_hours
        self._periods_held = Decimal(settings.min_hold_hours) / interval_hours
        # Taker fees and slippage on four fills (both legs in, both out), as a
        # fraction of one leg's notional.
        self.round_trip_cost = 2 * (fees.spot_taker + fees.perp_taker) + 4 * slippage
        self._rates: deque[Decimal] = deque(
            maxlen=max(settings.funding_window, settings.negative_streak)
        )

    def on_funding(self, rate: Decimal) -> None:
        self._rates.append(rate)

    def average_rate(self) -> Decimal | None:
        """Mean of the last ``funding_window`` settled rates; None until there are that many."""
        n = self._s.funding_window
        if len(self._rates) < n:
            return None
        recent = list(self._rates)[-n:]
        return sum(recent, Decimal(0)) / n

    def entry_reason(self, spot_price: Decimal, perp_price: Decimal) -> str | None:
        avg = self.average_rate()
        if avg is None:
            return None
        annual = avg * self._per_year
        if annual <= self._s.entry_annualised:
            return None
        if avg * self._periods_held <= self.round_trip_cost:
            return None  # would not earn back the fees and slippage in the minimum hold
        if abs(basis(spot_price, perp_price)) > self._s.max_basis:
            return None  # would leave again at once
        return f"funding {annual:.2%}/y above {self._s.entry_annualised:.2%}/y"

    def exit_reason(self, spot_price: Decimal, perp_price: Decimal) -> str | None:
        b = basis(spot_price, perp_price)
        if abs(b) > self._s.max_basis:
            return f"basis {b:.3%} beyond {self._s.max_basis:.3%}"
        k = self._s.negative_streak
        if len(self._rates) >= k and all(r < 0 for r in list(self._rates)[-k:]):
            return f"funding negative {k} settlements in a row"
        avg = self.average_rate()
        if avg is not None and avg * self._per_year < self._s.exit_annualised:
            return f"funding {avg * self._per_year:.2%}/y below {self._s.exit_annualised:.2%}/y"
        return None


class AlwaysHedged:
    """The baseline: enter as soon as prices allow, hold to the end of the data."""

    def on_funding(self, rate: Decimal) -> None:
        pass

    def entry_reason(self, spot_price: Decimal, perp_price: Decimal) -> str | None:
        return "baseline: always hedged"

    def exit_reason(self, spot_price: Decimal, perp_price: Decimal) -> str | None:
        return None
