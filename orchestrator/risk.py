"""Pre-trade risk checks."""

from __future__ import annotations

from decimal import Decimal

from orchestrator.settings import TradingSettings


class RiskManager:
    def __init__(self, settings: TradingSettings) -> None:
        self._settings = settings

    def check_can_open(self, position_size_usd: Decimal) -> tuple[bool, str]:
        """(True, "") if a position of this notional may be opened, else (False, why)."""
        if not position_size_usd.is_finite() or position_size_usd <= 0:
            return False, f"position size {position_size_usd} USD is not a positive number"
        limit = self._settings.max_position_size_usd
        if position_size_usd > limit:
            return False, f"position size {position_size_usd} USD exceeds the limit of {limit} USD"
        return True, ""
