"""One quantity that is a valid order on both the spot and the perp instrument."""

from __future__ import annotations

import math
from decimal import ROUND_DOWN, Decimal

from orchestrator.models import Instrument
from orchestrator.settings import TradingSettings


def common_step(a: Decimal, b: Decimal) -> Decimal:
    """The smallest quantity that is a whole number of both steps (their LCM)."""
    exp = min(int(a.as_tuple().exponent), int(b.as_tuple().exponent), 0)
    scale = Decimal(10) ** -exp
    ia, ib = int(a * scale), int(b * scale)
    return Decimal(math.lcm(ia, ib)) / scale


def round_down(quantity: Decimal, step: Decimal) -> Decimal:
    return (quantity / step).to_integral_value(rounding=ROUND_DOWN) * step


class PositionSizer:
    def __init__(self, settings: TradingSettings) -> None:
        self._settings = settings

    def calculate_matching_quantity(
        self,
        price: Decimal,
        available_balance: Decimal,
        spot: Instrument,
        perp: Instrument,
        perp_price: Decimal | None = None,
    ) -> Decimal | None:
        """The largest hedge quantity worth at most ``min(available_balance,
        max_position_size_usd)`` at ``price`` (the spot price), on both
        instruments' step, meeting both minimum quantities and minimum notionals
        (the perp's at ``perp_price``, the spot price if not given).

        None when no such quantity exists.
        """
        perp_price = price if perp_price is None else perp_price
        budget = min(available_balance, self._settings.max_position_size_usd)
        if budget <= 0 or price <= 0 or perp_price <= 0:
            return None
        qty = round_down(budget / price, common_step(spot.qty_step, perp.qty_step))
        if qty <= 0 or qty < spot.min_qty or qty < perp.min_qty:
            return None
        if qty * price < spot.min_notional or qty * perp_price < perp.min_notional:
            return None
        return qty
