"""Delta neutrality: do the spot and perp quantities still cancel out? (RISK-04)"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from orchestrator.models import ZERO, DeltaStatus, Position
from orchestrator.settings import TradingSettings


class DeltaValidator:
    def __init__(self, settings: TradingSettings) -> None:
        self._tolerance = settings.delta_drift_tolerance

    def validate(self, spot_qty: Decimal, perp_qty: Decimal) -> DeltaStatus:
        larger = max(spot_qty, perp_qty)
        drift = abs(spot_qty - perp_qty) / larger if larger > 0 else ZERO
        return DeltaStatus(
            spot_qty=spot_qty,
            perp_qty=perp_qty,
            drift_pct=drift,
            tolerance=self._tolerance,
            is_within_tolerance=drift <= self._tolerance,
        )

    def validate_position(
        self, position: Position, current_spot_qty: Decimal, current_perp_qty: Decimal
    ) -> DeltaStatus:
        status = self.validate(current_spot_qty, current_perp_qty)
        return msgspec.structs.replace(status, position_id=position.id)
