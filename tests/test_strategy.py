from __future__ import annotations

from decimal import Decimal

from orchestrator.config import StrategySettings
from orchestrator.money import exact
from orchestrator.settings import FeeSettings
from orchestrator.strategy.funding import AlwaysHedged, FundingStrategy, basis

D = Decimal
SETTINGS = StrategySettings(
    funding_window=3,
    entry_annualised=D("0.10"),
    exit_annualised=D("0.02"),
    negative_streak=2,
    max_basis=D("0.005"),
    min_hold_hours=72,
)
FEES = FeeSettings(spot_taker=D("0.001"), perp_taker=D("0.00055"))
SPOT, PERP = D(50000), D(50010)  # basis 0.02 %


def strategy(
    rates: list[str], settings: StrategySettings = SETTINGS, fees: FeeSettings = FEES
) -> FundingStrategy:
    s = FundingStrategy(settings, fees, slippage=D("0.0005"))
    for r in rates:
        s.on_funding(D(r))
    return s


def test_round_trip_cost_counts_both_legs_in_and_out() -> None:
    s = strategy([])
    assert s.round_trip_cost == 2 * (D("0.001") + D("0.00055")) + 4 * D("0.0005")


def test_enters_when_funding_is_high_and_pays_for_the_round_trip() -> None:
    # 0.0006 per 8 h = 65.7 %/y; 72 h hold = 9 settlements = 0.54 % > 0.51 % cost.
    s = strategy(["0.0006", "0.0006", "0.0006"])
    reason = s.entry_reason(SPOT, PERP)
    assert reason is not None
    assert "65.70%/y" in reason


def test_waits_until_the_window_has_filled() -> None:
    assert strategy(["0.0006", "0.0006"]).entry_reason(SPOT, PERP) is None


def test_stays_out_when_fees_exceed_the_expected_funding() -> None:
    # 0.0002 per 8 h = 21.9 %/y, above the 10 % threshold, but 9 settlements
    # bring 0.18 % against a 0.51 % round trip.
    s = strategy(["0.0002", "0.0002", "0.0002"])
    assert s.entry_reason(SPOT, PERP) is None
    cheap = FeeSettings(spot_taker=D(0), perp_taker=D(0))
    no_cost = FundingStrategy(SETTINGS, cheap, slippage=D(0))
    for _ in range(3):
        no_cost.on_funding(D("0.0002"))
    assert no_cost.entry_reason(SPOT, PERP) is not None


def test_stays_out_below_the_entry_threshold() -> None:
    # 0.00005 per 8 h = 5.5 %/y.
    long_hold = StrategySettings(min_hold_hours=100_000)
    s = strategy(["0.00005"] * 3, settings=long_hold)
    assert s.entry_reason(SPOT, PERP) is None


def test_stays_out_when_the_basis_is_already_too_wide() -> None:
    s = strategy(["0.0006"] * 3)
    assert s.entry_reason(D(50000), D(50300)) is None  # 0.6 % > 0.5 %


def test_exits_when_funding_falls_below_the_exit_threshold() -> None:
    s = strategy(["0.0006"] * 3)
    assert s.exit_reason(SPOT, PERP) is None
    for r in ("0.00001", "0.00001", "0.00001"):  # 1.1 %/y
        s.on_funding(D(r))
    reason = s.exit_reason(SPOT, PERP)
    assert reason is not None
    assert "below 2.00%/y" in reason


def test_exits_after_a_negative_streak_even_if_the_average_holds() -> None:
    s = strategy(["0.002", "0.002", "0.002"])
    s.on_funding(D("-0.0001"))
    assert s.exit_reason(SPOT, PERP) is None  # one negative: average still high
    s.on_funding(D("-0.0001"))
    reason = s.exit_reason(SPOT, PERP)
    assert reason is not None
    assert "negative 2 settlements in a row" in reason


def test_exits_when_the_basis_moves_beyond_its_limit() -> None:
    s = strategy(["0.0006"] * 3)
    reason = s.exit_reason(D(50000), D(49700))  # perp 0.6 % under spot
    assert reason is not None
    assert "basis -0.600%" in reason


def test_basis_is_the_perp_premium() -> None:
    assert basis(D(100), D("100.5")) == D("0.005")


def test_baseline_is_always_in() -> None:
    b = AlwaysHedged()
    assert b.entry_reason(SPOT, PERP) is not None
    assert b.exit_reason(SPOT, D(1)) is None


def test_the_thresholds_are_judged_exactly_where_the_mean_does_not_end() -> None:
    # 0.0003001 over 3 settlements: a mean of 0.000100033... (it never ends), a year of it
    # at 8 h exactly 0.1095365. Equal to a threshold is neither above nor below it; a
    # hair either side is.
    rates = ["0.0001", "0.0001", "0.0001001"]
    free = FeeSettings(spot_taker=D(0), perp_taker=D(0))

    def judged(entry: str, exit: str) -> FundingStrategy:
        settings = StrategySettings(
            funding_window=3, entry_annualised=D(entry), exit_annualised=D(exit)
        )
        s = FundingStrategy(settings, free, slippage=D(0))
        with exact():  # as a run judges: in the money context, 200 digits
            for r in rates:
                s.on_funding(D(r))
        return s

    assert judged("0.1095365", "0.02").entry_reason(SPOT, PERP) is None
    assert judged("0.1095364", "0.02").entry_reason(SPOT, PERP) == (
        "funding 10.95%/y above 10.95%/y"
    )
    assert judged("0.5", "0.1095365").exit_reason(SPOT, PERP) is None
    assert judged("0.5", "0.1095366").exit_reason(SPOT, PERP) == "funding 10.95%/y below 10.95%/y"
