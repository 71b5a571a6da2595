from __future__ import annotations

from decimal import Decimal

import pytest

from orchestrator import FeeCalculator, FeeSettings, PositionSizer, RiskManager, TradingSettings
from orchestrator.models import Category
from orchestrator.position.sizing import common_step
from tests.support import BTC_PERP, BTC_SPOT, ETH_PERP, ETH_SPOT

D = Decimal
SIZER = PositionSizer(TradingSettings(max_position_size_usd=D(1000)))


def test_quantity_is_rounded_down_to_the_coarser_step() -> None:
    # 900 / 50000 = 0.018 exactly; 700 / 50000 = 0.014; 777 / 50000 = 0.01554 -> 0.015
    assert SIZER.calculate_matching_quantity(D(50000), D(777), BTC_SPOT, BTC_PERP) == D("0.015")
    qty = SIZER.calculate_matching_quantity(D(3000), D(100), ETH_SPOT, ETH_PERP)
    assert qty == D("0.03")  # 0.0333.. on the perp's 0.01 step


def test_size_limit_caps_the_budget() -> None:
    qty = SIZER.calculate_matching_quantity(D(50000), D(1_000_000), BTC_SPOT, BTC_PERP)
    assert qty == D("0.02")  # 1000 USD limit


def test_below_minimum_quantity_or_notional_gives_none() -> None:
    # 40 USD of BTC at 50000 is 0.0008: below the perp's 0.001 minimum.
    assert SIZER.calculate_matching_quantity(D(50000), D(40), BTC_SPOT, BTC_PERP) is None
    # 0.001 BTC at 4000 is 4 USD: below the 5 USD minimum notional.
    assert SIZER.calculate_matching_quantity(D(4000), D("4.5"), BTC_SPOT, BTC_PERP) is None


def test_perp_notional_is_checked_at_the_perp_price() -> None:
    # 0.001 at 5000 spot is exactly 5 USD; the perp trades lower, under its minimum.
    qty = SIZER.calculate_matching_quantity(D(5000), D(5), BTC_SPOT, BTC_PERP, perp_price=D(4999))
    assert qty is None


@pytest.mark.parametrize("balance", [D(0), D(-10)])
def test_no_budget_gives_none(balance: Decimal) -> None:
    assert SIZER.calculate_matching_quantity(D(50000), balance, BTC_SPOT, BTC_PERP) is None


def test_common_step_is_a_multiple_of_both() -> None:
    assert common_step(D("0.000001"), D("0.001")) == D("0.001")
    assert common_step(D("0.2"), D("0.3")) == D("0.6")


def test_risk_manager_checks_the_limit() -> None:
    risk = RiskManager(TradingSettings(max_position_size_usd=D(1000)))
    assert risk.check_can_open(D(1000)) == (True, "")
    ok, why = risk.check_can_open(D("1000.01"))
    assert not ok
    assert "exceeds the limit of 1000 USD" in why
    assert not risk.check_can_open(D(0))[0]


def test_fee_calculator_by_category() -> None:
    fees = FeeCalculator(FeeSettings(spot_taker=D("0.001"), perp_taker=D("0.00055")))
    assert fees.fee(Category.SPOT, D("0.02"), D(50000)) == D("1.000")
    assert fees.fee(Category.LINEAR, D("0.02"), D(50000)) == D("0.55000")
    assert fees.round_trip_rate() == D("0.00310")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_position_size_usd", D(0), "max_position_size_usd must be a positive"),
        ("delta_drift_tolerance", D("1.5"), "between 0 and 1"),
        ("delta_drift_tolerance", D(-1), "between 0 and 1"),
        ("order_timeout_seconds", 0.0, "order_timeout_seconds must be > 0"),
    ],
)
def test_trading_settings_refuse_nonsense(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TradingSettings(**{field: value})  # type: ignore[arg-type]
