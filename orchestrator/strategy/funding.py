"""When to hold a pair's hedge, from what was known at that moment only.

A strategy sees settled funding rates one by one as they settle, and the prices
it is asked about; it keeps no other data, so it cannot look ahead.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal
from itertools import islice
from typing import Protocol

import msgspec

from orchestrator.config import Config, StrategySettings
from orchestrator.models import ZERO
from orchestrator.settings import FeeSettings

HOURS_PER_YEAR = Decimal(365 * 24)
ONE = Decimal(1)  # a Decimal (as ZERO), so that no int is made into one on every use


class Strategy(Protocol):
    """What a run asks a pair's strategy. A strategy may also have ``quiet(holding)``:
    True when no price could make it act now (entry_reason while flat, exit_reason while
    holding, would be None whatever the prices), so that a run need not ask it."""

    def on_funding(self, rate: Decimal) -> None:
        """A funding settlement at this rate has just happened."""

    def entry_reason(self, spot_price: Decimal, perp_price: Decimal) -> str | None:
        """Why to open a hedge now, or None to stay out."""

    def exit_reason(self, spot_price: Decimal, perp_price: Decimal) -> str | None:
        """Why to close the hedge now, or None to hold."""


def basis(spot_price: Decimal, perp_price: Decimal) -> Decimal:
    """Perp premium over spot, a fraction: perp / spot - 1."""
    return perp_price / spot_price - ONE


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
        self._slippage = slippage
        self.adopt(fees, interval_hours)
        self._rates: deque[Decimal] = deque(
            maxlen=max(settings.funding_window, settings.negative_streak)
        )
        # The sum of the last funding_window rates (None: fewer known). The rules are
        # judged on it exactly (rule x window, not the mean's 200-digit quotient); the
        # mean and its annual figure are worked out only when a text shows them.
        self._total: Decimal | None = None
        # Why to enter, and why to leave, as far as funding goes: whether there is a
        # case, its text written only when asked for (a settlement at every pair of a
        # universe, most never read: formatting a Decimal as a percentage costs more
        # than judging it).
        self._entry_case = False  # the annualised funding clears both entry rules
        self._entry_text: str | None = None
        self._streak = False  # funding negative negative_streak settlements in a row
        self._exit_case = False  # else the annualised funding is below the exit rule
        self._exit_text: str | None = None

    def adopt(self, fees: FeeSettings, interval_hours: int) -> None:
        """Count with these fees and this funding interval (a live run's: the account's
        own rates, the perp's own interval), before the first settlement."""
        self._fees, self._interval_hours = fees, interval_hours
        self._per_year = HOURS_PER_YEAR / interval_hours
        self._periods_held = Decimal(self._s.min_hold_hours) / interval_hours
        # Taker fees and slippage on four fills (both legs in, both out), as a
        # fraction of one leg's notional.
        self.round_trip_cost = 2 * (fees.spot_taker + fees.perp_taker) + 4 * self._slippage

    def retune(self, settings: StrategySettings) -> None:
        """Decide with these thresholds from now on (``orchestrator set`` on a running
        run): the rates already seen are judged again by them. The funding window and
        the negative streak stay as they were (they size what is remembered)."""
        self._s = msgspec.structs.replace(
            settings,
            funding_window=self._s.funding_window,
            negative_streak=self._s.negative_streak,
        )
        self.adopt(self._fees, self._interval_hours)
        if self._rates:
            self._judge()

    def on_funding(self, rate: Decimal) -> None:
        self._rates.append(rate)
        self._judge()

    def _judge(self) -> None:
        # Funding changes only here; prices change every hour. Work out once what
        # the rates say, so the hourly checks only look at the basis.
        n, k = self._s.funding_window, self._s.negative_streak
        recent = self._rates
        size = len(recent)
        if size >= n:
            window = recent if size == n else islice(recent, size - n, None)
            total = self._total = sum(window, ZERO)
            # mean x per_year > entry_annualised, mean x periods_held > the round trip,
            # mean x per_year < exit_annualised, each times n: the same rules, exactly.
            yearly = total * self._per_year
            self._entry_case = (
                yearly > self._s.entry_annualised * n
                and total * self._periods_held > self.round_trip_cost * n
            )
            low = yearly < self._s.exit_annualised * n
        else:
            self._total = None
            self._entry_case = low = False
        self._entry_text = None
        # The newest first: a streak usually ends at once (k >= 1), so the newest is
        # looked at before any generator is made.
        self._streak = (
            size >= k and recent[-1] < ZERO and all(recent[-i] < ZERO for i in range(2, k + 1))
        )
        self._exit_case = low and not self._streak
        self._exit_text = None

    def _annual(self) -> Decimal:
        """The mean of the funding window, annualised (known: ``_total`` is not None)."""
        assert self._total is not None
        return self._total / self._s.funding_window * self._per_year

    def _entry(self) -> str | None:
        """Why to enter, as far as funding goes (its text, written once per settlement)."""
        if not self._entry_case:
            return None
        if self._entry_text is None:
            annual = self._annual()
            self._entry_text = f"funding {annual:.2%}/y above {self._s.entry_annualised:.2%}/y"
        return self._entry_text

    def _exit(self) -> str | None:
        """Why to leave, as far as funding goes (its text, written once per settlement)."""
        if self._streak:
            return f"funding negative {self._s.negative_streak} settlements in a row"
        if not self._exit_case:
            return None
        if self._exit_text is None:
            annual = self._annual()
            self._exit_text = f"funding {annual:.2%}/y below {self._s.exit_annualised:.2%}/y"
        return self._exit_text

    def quiet(self, holding: bool) -> bool:
        """No price can make it act: flat while funding gives no reason to enter. (Holding,
        the basis can always call for an exit.)"""
        return not holding and not self._entry_case

    def waiting(self, holding: bool) -> str | None:
        """Why funding alone gives it nothing to do now (a heartbeat says it); None when
        it would act on the right prices."""
        known, needed = len(self._rates), self._s.funding_window
        if known < needed:
            return f"{known} of {needed} settlements known"
        if holding or self._entry_case or self._total is None:
            return None
        annual = self._annual()
        if annual <= self._s.entry_annualised:
            return f"funding {annual:.2%}/y, not above {self._s.entry_annualised:.2%}/y"
        return (
            f"funding {annual:.2%}/y would not earn back the round trip's "
            f"{self.round_trip_cost:.3%} within {self._s.min_hold_hours} h"
        )

    def average_rate(self) -> Decimal | None:
        """Mean of the last ``funding_window`` settled rates; None until there are that many."""
        return None if self._total is None else self._total / self._s.funding_window

    def entry_reason(self, spot_price: Decimal, perp_price: Decimal) -> str | None:
        # None also when the funding would not earn back the round trip's fees and
        # slippage within the minimum hold.
        if not self._entry_case:
            return None
        if abs(perp_price / spot_price - ONE) > self._s.max_basis:  # basis(), inline
            return None  # would leave again at once
        return self._entry()

    def exit_reason(self, spot_price: Decimal, perp_price: Decimal) -> str | None:
        # A replay asks at every instant it holds: basis(), inline.
        b = perp_price / spot_price - ONE
        if abs(b) > self._s.max_basis:
            return f"basis {b:.3%} beyond {self._s.max_basis:.3%}"
        return self._exit()


class AlwaysHedged:
    """The baseline: enter as soon as prices allow, hold to the end of the data."""

    def on_funding(self, rate: Decimal) -> None:
        pass

    def quiet(self, holding: bool) -> bool:
        """Once in, nothing makes it leave before the end of the data."""
        return holding

    def entry_reason(self, spot_price: Decimal, perp_price: Decimal) -> str | None:
        return "baseline: always hedged"

    def exit_reason(self, spot_price: Decimal, perp_price: Decimal) -> str | None:
        return None


def strategies(config: Config) -> list[Strategy]:
    return [
        FundingStrategy(config.strategy, config.fees, config.paper.slippage)
        for _ in config.pair_list
    ]
