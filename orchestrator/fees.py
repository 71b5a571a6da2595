"""Fee rates by category and liquidity role."""

from __future__ import annotations

from decimal import Decimal

from orchestrator.models import Category
from orchestrator.settings import FeeSettings


class FeeCalculator:
    def __init__(self, settings: FeeSettings) -> None:
        self._settings = settings

    def rate(self, category: Category, *, maker: bool = False) -> Decimal:
        s = self._settings
        if category is Category.SPOT:
            return s.spot_maker if maker else s.spot_taker
        return s.perp_maker if maker else s.perp_taker

    def fee(
        self, category: Category, quantity: Decimal, price: Decimal, *, maker: bool = False
    ) -> Decimal:
        """Fee in the quote currency for ``quantity`` at ``price``."""
        return quantity * price * self.rate(category, maker=maker)

    def round_trip_rate(self) -> Decimal:
        """Taker fees of both legs in and out, as a fraction of one leg's notional."""
        return 2 * (self._settings.spot_taker + self._settings.perp_taker)
