"""Pre-trade risk checks: one position's size, and the portfolio's limits.

A position's exposure is the notional of both its legs: quantity x spot price plus
quantity x perp price, at the prices its open was checked at (about twice what
``trading.max_position_size_usd`` counts, which is one leg). A position counts
against the portfolio's limits from its check until it is finished (closed, rolled
back): open, opening, closing or needing attention alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from orchestrator.settings import TradingSettings


@dataclass(frozen=True)
class PortfolioLimits:
    """Limits across all pairs; None: none beyond one position per pair and the balance."""

    max_open_positions: int | None = None
    max_total_exposure_usd: Decimal | None = None

    @property
    def any(self) -> bool:
        return self.max_open_positions is not None or self.max_total_exposure_usd is not None


def exposure_usd(quantity: Decimal, spot_price: Decimal, perp_price: Decimal) -> Decimal:
    """A position's exposure: both legs' notional, the spot's plus the perp's."""
    return quantity * spot_price + quantity * perp_price


class RiskManager:
    def __init__(self, settings: TradingSettings, limits: PortfolioLimits | None = None) -> None:
        self._settings = settings
        self.limits = limits or PortfolioLimits()

    def check_can_open(self, position_size_usd: Decimal) -> tuple[bool, str]:
        """(True, "") if a position of this notional may be opened, else (False, why)."""
        if not position_size_usd.is_finite() or position_size_usd <= 0:
            return False, f"position size {position_size_usd} USD is not a positive number"
        limit = self._settings.max_position_size_usd
        if position_size_usd > limit:
            return False, f"position size {position_size_usd} USD exceeds the limit of {limit} USD"
        return True, ""

    def check_portfolio(self, exposure: Decimal, open_exposures: Sequence[Decimal]) -> str | None:
        """Why one more position of ``exposure`` (both legs, USD) may not join the
        positions open or opening now (``open_exposures``, one each), or None if it may."""
        cap = self.limits.max_open_positions
        if cap is not None and len(open_exposures) >= cap:
            return (
                f"risk.max_open_positions reached: {len(open_exposures)} position"
                f"{'' if len(open_exposures) == 1 else 's'} open or opening, the limit is {cap}"
            )
        total_cap = self.limits.max_total_exposure_usd
        if total_cap is not None:
            held = sum(open_exposures, Decimal(0))
            if held + exposure > total_cap:
                return (
                    f"risk.max_total_exposure_usd reached: this position's {exposure:.2f} USD "
                    f"(both legs) and the {held:.2f} USD open or opening make "
                    f"{held + exposure:.2f} USD, above the limit of {total_cap} USD"
                )
        return None
