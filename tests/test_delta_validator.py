from __future__ import annotations

from decimal import Decimal

from orchestrator import DeltaValidator, Position, TradingSettings

D = Decimal
VALIDATOR = DeltaValidator(TradingSettings(delta_drift_tolerance=D("0.02")))


def test_equal_quantities_have_no_drift() -> None:
    status = VALIDATOR.validate(D("0.5"), D("0.5"))
    assert status.drift_pct == 0
    assert status.is_within_tolerance


def test_one_percent_is_within_two_percent() -> None:
    status = VALIDATOR.validate(D("0.99"), D("1.00"))
    assert status.drift_pct == D("0.01")
    assert status.is_within_tolerance


def test_three_percent_exceeds_two_percent() -> None:
    status = VALIDATOR.validate(D("1.00"), D("0.97"))
    assert status.drift_pct == D("0.03")
    assert not status.is_within_tolerance


def test_exactly_at_the_tolerance_is_within() -> None:
    assert VALIDATOR.validate(D("0.98"), D("1")).is_within_tolerance


def test_zero_quantities_are_neutral_not_an_error() -> None:
    status = VALIDATOR.validate(D(0), D(0))
    assert status.drift_pct == 0
    assert status.is_within_tolerance
    # One leg empty is total drift.
    one_sided = VALIDATOR.validate(D("0.1"), D(0))
    assert one_sided.drift_pct == 1
    assert not one_sided.is_within_tolerance


def test_validate_position_names_the_position() -> None:
    position = Position(id="p7", spot_symbol="BTC/USDT", perp_symbol="BTC/USDT:USDT")
    status = VALIDATOR.validate_position(position, D(1), D(1))
    assert status.position_id == "p7"
    assert status.spot_qty == status.perp_qty == D(1)
