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


class VenueTiming(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How long things may take at the venue. Every live deadline derives from these.

    - ``request_timeout_ms`` is ccxt's ``timeout``: how long one request waits for its
      answer. A create with no answer by then is "outcome unknown", never "failed".
    - ``recv_window_ms`` is sent to Bybit as ``recvWindow``: the venue accepts a signed
      request until its timestamp plus this. So an order whose answer was lost may
      still land that long after it was signed.
    - ``clock_skew_ms``: how far this machine's clock may be from the venue's.

    An order whose answer was lost is concluded absent only when a lookup after
    signing + recv window + clock skew (``late_arrival_seconds``) finds nothing.
    The open's deadline (``trading.order_timeout_seconds``) must leave room for a
    create and a read of its fill: at least twice the request timeout.
    """

    request_timeout_ms: int = 3000
    recv_window_ms: int = 5000
    clock_skew_ms: int = 1000

    def __post_init__(self) -> None:
        for name, low, high in (
            ("request_timeout_ms", 100, 60_000),
            ("recv_window_ms", 100, 60_000),
            ("clock_skew_ms", 0, 10_000),
        ):
            value = getattr(self, name)
            if not low <= value <= high:
                raise ValueError(f"{name} must be between {low} and {high}, got {value}")

    @property
    def late_arrival_seconds(self) -> float:
        return (self.recv_window_ms + self.clock_skew_ms) / 1000
