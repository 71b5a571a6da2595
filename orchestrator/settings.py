"""Settings the execution core needs. Decimals are written as quoted strings in YAML."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from orchestrator.models import require_positive


class TradingSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    max_position_size_usd: Decimal = Decimal(1000)
    order_timeout_seconds: float = 10.0
    delta_drift_tolerance: Decimal = Decimal("0.02")  # a fraction: 0.02 = 2 %

    def __post_init__(self) -> None:
        require_positive("max_position_size_usd", self.max_position_size_usd)
        if not self.order_timeout_seconds > 0:
            raise ValueError(f"order_timeout_seconds must be > 0, got {self.order_timeout_seconds}")
        tol = self.delta_drift_tolerance
        if not tol.is_finite() or not 0 <= tol <= 1:
            raise ValueError(f"delta_drift_tolerance must be between 0 and 1, got {tol}")


class FeeSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # Bybit's base (VIP 0) rates.
    spot_maker: Decimal = Decimal("0.001")
    spot_taker: Decimal = Decimal("0.001")
    perp_maker: Decimal = Decimal("0.0002")
    perp_taker: Decimal = Decimal("0.00055")

    def __post_init__(self) -> None:
        for name in ("spot_maker", "spot_taker", "perp_maker", "perp_taker"):
            rate: Decimal = getattr(self, name)
            # A maker rebate is a negative rate; beyond 10 % is a typo.
            if not rate.is_finite() or not Decimal("-0.1") <= rate <= Decimal("0.1"):
                raise ValueError(f"{name} must be a fraction between -0.1 and 0.1, got {rate}")
